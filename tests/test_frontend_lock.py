"""Starting the app leaves the committed frontend lock (reflex.lock/) as it is in git."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("frontend_lock", ROOT / "scripts" / "frontend_lock.py")
frontend_lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(frontend_lock)

PINS = {
    "name": "reflex",
    "type": "module",
    "scripts": {"dev": "react-router dev --host", "export": "react-router build"},
    "dependencies": {"react": "19.3.1", "radix-ui": "1.8.1"},
    "devDependencies": {"vite": "8.3.4"},
    "overrides": {},
}


def test_the_committed_package_json_is_byte_for_byte_what_reflex_writes(monkeypatch):
    from reflex.utils import frontend_skeleton

    # Reflex renders .web/package.json from the committed file and copies it back on every
    # start: anything but its own rendering turns a fresh clone dirty at the first run.
    monkeypatch.chdir(ROOT)
    committed = (ROOT / "reflex.lock" / "package.json").read_text(encoding="utf-8")
    assert frontend_skeleton._compile_package_json() == committed


def test_the_committed_lock_pair_pins_every_dependency():
    package = json.loads((ROOT / "reflex.lock" / "package.json").read_text(encoding="utf-8"))
    lock = (ROOT / "reflex.lock" / "bun.lock").read_text(encoding="utf-8")
    for name, version in {**package["dependencies"], **package["devDependencies"]}.items():
        assert f'"{name}": "{version}"' in lock, f"{name}@{version} is not in bun.lock"


def _project(tmp_path: Path, committed: str, built: str | None) -> Path:
    (tmp_path / "reflex.lock").mkdir()
    (tmp_path / "reflex.lock" / "package.json").write_text(committed)
    if built is not None:
        (tmp_path / ".web").mkdir()
        (tmp_path / ".web" / "package.json").write_text(built)
    return tmp_path


def test_a_reindented_build_copy_gets_the_committed_bytes(tmp_path):
    committed = json.dumps(PINS)
    project = _project(tmp_path, committed, json.dumps(PINS, indent=2) + "\n")
    assert frontend_lock.normalize_package_json(project) == [project / ".web" / "package.json"]
    assert (project / ".web" / "package.json").read_text() == committed
    assert (project / "reflex.lock" / "package.json").read_text() == committed


def test_a_committed_file_bun_reindented_is_written_back_the_way_reflex_writes_it(tmp_path):
    # After bun added a package, Reflex copied bun's indented file over the committed one.
    indented = json.dumps(PINS, indent=2) + "\n"
    project = _project(tmp_path, indented, indented)
    frontend_lock.normalize_package_json(project)
    assert (project / "reflex.lock" / "package.json").read_text() == json.dumps(PINS)
    assert (project / ".web" / "package.json").read_text() == json.dumps(PINS)


@pytest.mark.parametrize(
    "built",
    [
        # A dependency bun just added and Reflex has not copied back yet: a real change, left alone.
        json.dumps({**PINS, "dependencies": {**PINS["dependencies"], "jssip": "3.13.8"}}, indent=2),
        "{not json",
        None,
    ],
    ids=["different-content", "unreadable", "no-build-yet"],
)
def test_a_build_copy_with_other_content_is_left_alone(tmp_path, built):
    project = _project(tmp_path, json.dumps(PINS), built)
    assert frontend_lock.normalize_package_json(project) == []
    if built is not None:
        assert (project / ".web" / "package.json").read_text() == built
    assert (project / "reflex.lock" / "package.json").read_text() == json.dumps(PINS)
