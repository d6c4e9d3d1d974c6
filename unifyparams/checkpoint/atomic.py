"""Crash-safe file replacement: write beside the target, fsync, then ``os.replace``.

A reader of ``path`` sees either the old file or the complete new one, never a partial write:
the data goes to a temporary file in the same folder (so the rename never crosses file
systems), is flushed and fsynced, and only then renamed over ``path``; the folder is fsynced
so the rename itself survives a power cut. If anything fails the temporary file is removed and
the old file is left as it was.

A process killed mid-write leaves its temporary behind. Temporaries are named
``.<target>.up<pid>h<host>-<random>.tmp`` so that a later save can prove one stale and remove it
(:func:`stale_temporaries`): ours by name and content, written on this host by a process that
no longer runs.

>>> with atomic_write(Path("notes.txt")) as out:
...     _ = out.write(b"all or nothing")
>>> Path("notes.txt").read_bytes()
b'all or nothing'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

#: ``.<target>.up<pid>h<host hash>-<mkstemp's 8 random characters>.tmp``
TEMP_PATTERN = re.compile(r"^\.(?P<target>.+)\.up(?P<pid>\d+)h(?P<host>[0-9a-f]{6})-[a-z0-9_]{8}\.tmp$")
#: Temporary files this process is writing now (never stale, even though their pid is alive).
_LIVE: set[str] = set()


def host_tag() -> str:
    """Six hex digits naming this host, so temporaries from another host are never judged here."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]


def _umask() -> int:
    try:  # Linux exposes the umask without changing it
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


class AtomicFile:
    """A new file written under a temporary name beside ``path``.

    Write to :attr:`file`, then :meth:`finish` (flush + fsync + close) and :meth:`commit` (rename
    into place); :meth:`discard` removes the temporary file. Splitting finish from commit lets
    several files (checkpoint shards) all be made durable before any of them replaces an old one.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{path.name}.up{os.getpid()}h{host_tag()}-"
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
        self.temp = Path(name)
        _LIVE.add(os.path.abspath(name))
        if hasattr(os, "fchmod"):  # mkstemp makes 0600 files; give the mode open() would
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o666 & ~_umask())
        self.file: IO[bytes] = os.fdopen(fd, "wb")

    def finish(self) -> None:
        """Make the written bytes durable under the temporary name."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def commit(self) -> None:
        """Atomically replace ``path`` with the finished file."""
        os.replace(self.temp, self.path)
        _LIVE.discard(os.path.abspath(self.temp))

    def discard(self) -> None:
        """Drop the temporary file (safe to call at any point, and more than once)."""
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.temp)
        _LIVE.discard(os.path.abspath(self.temp))


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process: stale unless in _LIVE (checked by the caller)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError, OverflowError):
        return False  # alive (another user's), or not a pid this system can ask about
    return False


def stale_temporaries(folder: Path, targets: Callable[[str], bool], content: Callable[[Path], bool]) -> list[Path]:
    """Temporaries in ``folder`` left by crashed writes of ours, provably.

    A file counts only when all hold: its name is one :class:`AtomicFile` makes, for a target
    name ``targets`` accepts; it was made on this host by a process that no longer runs (or by
    this process, and is not being written now); it is a regular file, not a symlink; and it is
    empty or ``content(path)`` recognizes what it holds.
    """
    found: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    host = host_tag()
    for entry in entries:
        m = TEMP_PATTERN.match(entry.name)
        if not m or not targets(m["target"]) or m["host"] != host or os.path.abspath(entry.path) in _LIVE:
            continue
        if not _process_gone(int(m["pid"])):
            continue
        try:
            info = os.lstat(entry.path)
        except OSError:
            continue
        path = Path(entry.path)
        if stat.S_ISREG(info.st_mode) and (info.st_size == 0 or content(path)):
            found.append(path)
    return found


def fsync_dir(folder: Path) -> None:
    """Persist renames in ``folder`` (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces ``path`` only if the block finishes without error."""
    pending = AtomicFile(path)
    try:
        yield pending.file
        pending.finish()
        pending.commit()
    except BaseException:
        pending.discard()
        raise
    fsync_dir(path.parent)
