"""Encrypted file storage: round trips, ranges, tampering, keys and rotation."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from services import security, storage

PURPOSE = "call_recording"
CHUNK = security.STREAM_CHUNK


@pytest.fixture
def store(tmp_path: Path) -> storage.LocalEncryptedStore:
    return storage.LocalEncryptedStore(tmp_path / "store")


def _content(n: int) -> bytes:
    # Not a repeating pattern: a chunk swapped for another would change the bytes read.
    return b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n // 32 + 1))[:n]


def _read(store: storage.Store, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.open_range(key, start, end, purpose=PURPOSE))


def _on_disk(store: storage.LocalEncryptedStore, key: str) -> Path:
    path = store._path(key)
    assert path.is_file()
    return path


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 12345])
def test_round_trip_of_any_size(store, size) -> None:
    data = _content(size)
    # Uneven input pieces: the store re-cuts them into its own chunks.
    pieces = [data[i : i + 10_000] for i in range(0, len(data), 10_000)]
    stored = store.put("recordings/t1/a.wav", iter(pieces), purpose=PURPOSE)
    assert stored == storage.StoredFile("recordings/t1/a.wav", size, hashlib.sha256(data).hexdigest(), security.current_key().kid)
    assert store.size("recordings/t1/a.wav") == size
    assert _read(store, "recordings/t1/a.wav") == data
    assert store.exists("recordings/t1/a.wav")


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 0), (CHUNK - 1, CHUNK - 1), (CHUNK - 1, CHUNK), (CHUNK, 2 * CHUNK - 1), (10, 3 * CHUNK + 5), (3 * CHUNK, 3 * CHUNK + 99), (2 * CHUNK + 7, None)],
)
def test_ranges_across_chunk_edges(store, start, end) -> None:
    data = _content(3 * CHUNK + 100)
    store.put("k", [data], purpose=PURPOSE)
    assert _read(store, "k", start, end) == data[start : (None if end is None else end + 1)]


def test_range_decrypts_only_the_chunks_it_covers(store, monkeypatch) -> None:
    store.put("k", [_content(10 * CHUNK)], purpose=PURPOSE)
    reads: list[int] = []
    original = security.EncryptedReader._chunk

    def counting(self, index):
        reads.append(index)
        return original(self, index)

    monkeypatch.setattr(security.EncryptedReader, "_chunk", counting)
    assert len(_read(store, "k", 5 * CHUNK + 3, 6 * CHUNK + 3)) == CHUNK + 1
    # The final chunk (here the empty 11th: the last is always shorter than a chunk) is
    # authenticated on open as the truncation check, then only chunks 5 and 6 are read.
    assert reads == [10, 5, 6]


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (5, 4), (0, 100), (100, None)])
def test_range_outside_the_file_is_refused(store, start, end) -> None:
    store.put("k", [b"x" * 100], purpose=PURPOSE)
    with pytest.raises(ValueError):
        store.open_range("k", start, end, purpose=PURPOSE)


def test_file_on_disk_is_not_the_plaintext(store) -> None:
    wav = b"RIFF" + (36 + 8000).to_bytes(4, "little") + b"WAVEfmt " + _content(8000)
    store.put("recordings/t1/call.wav", [wav], purpose=PURPOSE)
    raw = _on_disk(store, "recordings/t1/call.wav").read_bytes()
    assert not raw.startswith(b"RIFF")
    assert b"WAVE" not in raw
    assert wav[100:164] not in raw
    assert len(raw) == security.STREAM_HEADER_BYTES + len(wav) + 16
    assert oct(_on_disk(store, "recordings/t1/call.wav").stat().st_mode & 0o777) == "0o600"


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("where", ["header", "first chunk", "last chunk", "tag"])
def test_tampering_is_detected(store, where) -> None:
    store.put("k", [_content(2 * CHUNK + 10)], purpose=PURPOSE)
    path = _on_disk(store, "k")
    size = path.stat().st_size
    offset = {"header": 20, "first chunk": security.STREAM_HEADER_BYTES + 5, "last chunk": size - 20, "tag": size - 1}[where]
    _flip(path, offset)
    with pytest.raises(storage.CorruptFile):
        _read(store, "k")


def test_tampering_in_a_chunk_fails_the_read_that_reaches_it(store) -> None:
    data = _content(3 * CHUNK)
    store.put("k", [data], purpose=PURPOSE)
    _flip(_on_disk(store, "k"), security.STREAM_HEADER_BYTES + (CHUNK + 16) + 7)
    # Chunk 0 is intact and still readable; chunk 1 is refused.
    assert _read(store, "k", 0, 99) == data[:100]
    with pytest.raises(storage.CorruptFile):
        _read(store, "k", CHUNK, CHUNK + 1)


@pytest.mark.parametrize("cut", ["at a chunk boundary", "inside a chunk", "to the header"])
def test_truncation_is_detected(store, cut) -> None:
    store.put("k", [_content(3 * CHUNK + 10)], purpose=PURPOSE)
    path = _on_disk(store, "k")
    length = {
        "at a chunk boundary": security.STREAM_HEADER_BYTES + 2 * (CHUNK + 16),
        "inside a chunk": security.STREAM_HEADER_BYTES + 2 * (CHUNK + 16) + 100,
        "to the header": security.STREAM_HEADER_BYTES + 3,
    }[cut]
    with open(path, "r+b") as f:
        f.truncate(length)
    with pytest.raises(storage.CorruptFile):
        store.open_range("k", 0, None, purpose=PURPOSE)


def test_swapped_chunks_are_detected(store) -> None:
    store.put("k", [_content(3 * CHUNK)], purpose=PURPOSE)
    path = _on_disk(store, "k")
    raw = path.read_bytes()
    h, s = security.STREAM_HEADER_BYTES, CHUNK + 16
    path.write_bytes(raw[:h] + raw[h + s : h + 2 * s] + raw[h : h + s] + raw[h + 2 * s :])
    with pytest.raises(storage.CorruptFile):
        _read(store, "k", 0, 10)


def test_a_file_copied_under_another_key_or_read_for_another_purpose_is_refused(store) -> None:
    store.put("a", [b"secret audio"], purpose=PURPOSE)
    store.put("b", [b"other audio!"], purpose=PURPOSE)
    _on_disk(store, "b").write_bytes(_on_disk(store, "a").read_bytes())
    with pytest.raises(storage.CorruptFile):
        _read(store, "b")
    with pytest.raises(storage.CorruptFile):
        b"".join(store.open_range("a", purpose="whatsapp_media"))


def test_wrong_key_is_an_error(store, monkeypatch) -> None:
    store.put("k", [b"hello"], purpose=PURPOSE)
    monkeypatch.setenv("WATHEEQ_SECRET_KEY", security.generate_key())
    with pytest.raises(storage.CorruptFile, match="no key with id"):
        _read(store, "k")


def test_key_rotation_still_reads_old_files_and_writes_new_ones_under_the_new_key(store, monkeypatch) -> None:
    old, new = security.generate_key(), security.generate_key()
    monkeypatch.setenv("WATHEEQ_SECRET_KEY", old)
    store.put("old", [b"before rotation"], purpose=PURPOSE)
    monkeypatch.setenv("WATHEEQ_SECRET_KEY", new)
    monkeypatch.setenv("WATHEEQ_PREVIOUS_SECRET_KEYS", old)
    assert _read(store, "old") == b"before rotation"
    store.put("new", [b"after rotation"], purpose=PURPOSE)
    with open(_on_disk(store, "new"), "rb") as f:
        assert security.EncryptedReader(f, purpose=f"{PURPOSE}:new").key_id == security.parse_key(new).kid


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", "/abs", "a/../b", "A/b", "a//b", ".hidden", "a/.x", "a b", "a\\b", "", "a/" * 7 + "b", "x" * 300, "a/\x00"],
)
def test_unsafe_keys_are_refused(store, key) -> None:
    with pytest.raises(storage.InvalidKey):
        store.put(key, [b"x"], purpose=PURPOSE)
    with pytest.raises(storage.InvalidKey):
        store.exists(key)


def test_missing_file_and_delete(store) -> None:
    with pytest.raises(storage.NotStored):
        store.open_range("nope", purpose=PURPOSE)
    with pytest.raises(storage.NotStored):
        store.size("nope")
    store.put("recordings/x", [b"1"], purpose=PURPOSE)
    assert store.delete("recordings/x") is True
    assert not store.exists("recordings/x")
    assert store.delete("recordings/x") is False


def test_a_failed_write_leaves_the_previous_file_and_no_temp_file(store) -> None:
    store.put("k", [b"first version"], purpose=PURPOSE)

    def broken():
        yield b"partial"
        raise OSError("source went away")

    with pytest.raises(OSError):
        store.put("k", broken(), purpose=PURPOSE)
    assert _read(store, "k") == b"first version"
    assert [p.name for p in _on_disk(store, "k").parent.iterdir()] == ["k.wqs"]


def test_default_store_lives_under_the_data_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WATHEEQ_DATA_DIR", str(tmp_path / "d"))
    s = storage.default_store()
    s.put(storage.new_key("media", "t9", suffix=".jpg"), [b"img"], purpose="whatsapp_media")
    files = [p for p in (tmp_path / "d" / "store").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].suffix == ".wqs"
    assert os.path.commonpath([files[0], tmp_path / "d" / "store" / "media" / "t9"]) == str(tmp_path / "d" / "store" / "media" / "t9")


def test_signed_link_is_bound_to_subject_purpose_and_expiry() -> None:
    from datetime import datetime, timedelta, timezone

    now = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    token = security.sign_link("user 4 recording 9", purpose="recording.play", expires_at=now + timedelta(minutes=5))
    assert security.verify_link(token, "user 4 recording 9", purpose="recording.play", now=now)
    assert not security.verify_link(token, "user 5 recording 9", purpose="recording.play", now=now)
    assert not security.verify_link(token, "user 4 recording 9", purpose="other", now=now)
    assert not security.verify_link(token, "user 4 recording 9", purpose="recording.play", now=now + timedelta(minutes=6))
    exp, kid, mac = token.split(".")
    assert not security.verify_link(f"{int(exp) + 600}.{kid}.{mac}", "user 4 recording 9", purpose="recording.play", now=now)
    assert not security.verify_link("garbage", "user 4 recording 9", purpose="recording.play", now=now)


def test_a_link_signed_twice_within_its_window_is_the_same_link_and_lives_at_least_its_ttl() -> None:
    from datetime import datetime, timedelta, timezone

    ttl = timedelta(minutes=15)
    start = datetime(2026, 11, 30, 12, 0, 1, tzinfo=timezone.utc)
    links = {security.sign_link("s 1 m 2", purpose="media", expires_at=security.link_expiry(ttl, start + timedelta(seconds=s))) for s in range(0, 899, 7)}
    assert len(links) == 1
    for offset in range(0, 3600, 13):
        now = start + timedelta(seconds=offset)
        expires = security.link_expiry(ttl, now)
        assert ttl <= expires - now <= 2 * ttl and expires.timestamp() % 900 == 0
    assert security.link_expiry(ttl, start + timedelta(minutes=15)) != security.link_expiry(ttl, start)
