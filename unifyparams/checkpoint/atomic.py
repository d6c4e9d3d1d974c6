"""Crash-safe file replacement: write beside the target, fsync, then ``os.replace``.

A reader of ``path`` sees either the old file or the complete new one, never a partial write:
the data goes to a temporary file in the same folder (so the rename never crosses file
systems), is flushed and fsynced, and only then renamed over ``path``; the folder is fsynced
so the rename itself survives a power cut. If anything fails the temporary file is removed and
the old file is left as it was.

>>> with atomic_write(Path("model.safetensors")) as out:     # doctest: +SKIP
...     out.write(data)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


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
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        self.temp = Path(name)
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

    def discard(self) -> None:
        """Drop the temporary file (safe to call at any point, and more than once)."""
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.temp)


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
