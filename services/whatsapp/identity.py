"""A sidecar's stable identity: the same on this host across crashes and restarts, never shared.

The worker id names a sidecar's leases. When it changed with the process id, a sidecar killed
and started again had to wait out its own predecessor's lease (24-25 s with 30 s leases) before
it could take its firms' lines back. Now the id is ``<host id>:<name>``:

- the host id is generated once and kept in ``<data>/whatsapp/host-id`` (so it survives a
  changed hostname, and two hosts that share a hostname still differ);
- the name is given (``--name`` or ``WATHEEQ_WHATSAPP_SIDECAR_NAME``) or derived: the first
  free slot ``sidecar-1``, ``sidecar-2``, ... on this host.

Whichever way, the process holds an exclusive lock on ``<data>/whatsapp/sidecars/<name>.lock``
for its life. The kernel drops the lock the moment the process dies (even by SIGKILL), so a
restarted sidecar gets its predecessor's name and takes its leases back at once, while a second
sidecar running beside it can never get the same name: a derived name moves to the next slot,
and an explicit name already in use is refused.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from services import config
from services.whatsapp.gateway import whatsapp_dir

NAME_ENV = "WATHEEQ_WHATSAPP_SIDECAR_NAME"
MAX_SLOTS = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")


class IdentityError(RuntimeError):
    """The sidecar cannot take the identity it was given."""


@dataclass
class WorkerIdentity:
    """A held identity: keep the object (its lock) alive for as long as the sidecar runs."""

    worker_id: str
    name: str
    lock_path: Path
    _fd: int

    @property
    def fd(self) -> int:
        """The lock's file descriptor: pass it to a child that should hold the identity too."""
        return self._fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def host_id(folder: Path | None = None) -> str:
    """This host's id: a short hostname plus a random tag made once and kept in the data folder."""
    folder = folder or whatsapp_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "host-id"
    try:
        tag = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        tag = ""
    if not re.fullmatch(r"[0-9a-f]{8}", tag):
        tag = uuid.uuid4().hex[:8]
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(tag + "\n", encoding="utf-8")
        try:
            # Two sidecars starting at once: the first file linked in wins, both read it back.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        tag = path.read_text(encoding="utf-8").strip()
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname().split(".")[0])[:48] or "host"
    return f"{host}-{tag}"


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def acquire(name: str | None = None, *, folder: Path | None = None) -> WorkerIdentity:
    """Take this sidecar's identity (see the module's doc); IdentityError when ``name`` is in use."""
    folder = folder or whatsapp_dir()
    folder.mkdir(parents=True, exist_ok=True)
    host = host_id(folder)
    locks = folder / "sidecars"
    locks.mkdir(exist_ok=True)
    name = (name or config.get(NAME_ENV) or "").strip() or None
    if name is not None:
        if not _NAME.match(name):
            raise IdentityError("a sidecar name is 1 to 48 letters, digits, '.', '_' or '-'")
        path = locks / f"{name}.lock"
        fd = _try_lock(path)
        if fd is None:
            raise IdentityError(f"another sidecar on this host already runs as {name!r}")
        return WorkerIdentity(worker_id=f"{host}:{name}", name=name, lock_path=path, _fd=fd)
    for slot in range(1, MAX_SLOTS + 1):
        slot_name = f"sidecar-{slot}"
        path = locks / f"{slot_name}.lock"
        fd = _try_lock(path)
        if fd is not None:
            return WorkerIdentity(worker_id=f"{host}:{slot_name}", name=slot_name, lock_path=path, _fd=fd)
    raise IdentityError(f"{MAX_SLOTS} sidecars already run on this host")
