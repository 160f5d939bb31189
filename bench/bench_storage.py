"""Encrypted file storage (services/storage.py): write, full read and range-read speed.

A file of ``--mb`` MiB (random bytes: incompressible, like audio) is written through
``LocalEncryptedStore.put`` (AES-256-GCM per 64 KiB chunk, fsync, rename), read back whole,
and read by 1,000 random 64 KiB ranges (what a seeking <audio> element asks for): each
decrypts one or two chunks (plus the final chunk, checked on open), whatever the file's size.

    .venv/bin/python bench/bench_storage.py [--mb 200] [--ranges 1000]

Prints MiB/s for write and read, and range-read latency p50/p95/p99 in ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services import security, storage  # noqa: E402

PURPOSE = "call_recording"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--ranges", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("WATHEEQ_SECRET_KEY", security.generate_key())
    size = args.mb * 1024 * 1024
    piece = os.urandom(1024 * 1024)
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        store = storage.LocalEncryptedStore(Path(tmp) / "store")
        started = time.perf_counter()
        stored = store.put("bench/file.wav", (piece for _ in range(args.mb)), purpose=PURPOSE)
        write_s = time.perf_counter() - started
        assert stored.size == size
        on_disk = store._path("bench/file.wav").stat().st_size

        started = time.perf_counter()
        read = sum(len(c) for c in store.open_range("bench/file.wav", purpose=PURPOSE))
        read_s = time.perf_counter() - started
        assert read == size

        rng = random.Random(7)
        latencies = []
        for _ in range(args.ranges):
            first = rng.randrange(0, size - 65536)
            started = time.perf_counter()
            got = sum(len(c) for c in store.open_range("bench/file.wav", first, first + 65535, purpose=PURPOSE))
            latencies.append((time.perf_counter() - started) * 1000)
            assert got == 65536
    q = statistics.quantiles(latencies, n=100)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"file: {args.mb} MiB, on disk {on_disk / size:.5f}x (header + 16-byte tag per 64 KiB chunk)")
    print(f"write (encrypt + fsync + rename): {args.mb / write_s:.0f} MiB/s")
    print(f"read whole (decrypt): {args.mb / read_s:.0f} MiB/s")
    print(f"range read of 64 KiB at a random offset ({args.ranges}x, open + authenticate last chunk + 1-2 chunks): "
          f"p50 {q[49]:.2f} ms, p95 {q[94]:.2f} ms, p99 {q[98]:.2f} ms")


if __name__ == "__main__":
    main()
