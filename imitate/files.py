"""Atomic file writing and folder locks, for every writer in imitate (datasets, checkpoints, runs,
reports, videos, scripts).

Atomic means a reader sees either the previous file or the complete new one, never part of one:

1. the writer fills a temporary file in the target's folder, ``.NAME.tmp-PID`` (same
   filesystem, so the rename below cannot copy);
2. the temporary file is ``fsync``-ed, so its bytes are on disk before it gets the real name;
3. ``os.replace`` renames it over ``NAME`` (atomic on POSIX), then the folder is ``fsync``-ed
   so the rename itself survives a crash.

``atomic_write_files`` extends this to several files, all or nothing: every temporary file is
written and fsynced before the first rename, so a failure (a full disk, say) renames none. A writer
killed mid-way leaves at most ``.NAME.tmp-PID`` files, which ``remove_temporaries`` deletes.

A folder lock is an exclusive ``flock`` on a lock file in the folder (``folder_lock``). While held,
the lock file holds one line of text naming its holder, ``pid PID: COMMAND LINE`` (the command
line cut to 300 characters); it is emptied on release. The lock dies with its process, so a killed
writer never leaves a stale lock, and ``lock_holder`` tells whether one is held without taking it.

Errors: ``WriteError`` (an ``OSError``) when a file cannot be written, its message one line that
names the file and the cause and says that any earlier file there is unchanged;
``FolderBusyError`` (an ``OSError``, ``errno.EBUSY``) when another process holds a folder's lock,
its message naming the holder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

#: Bytes read at a time when hashing a file.
_CHUNK = 1 << 20
#: Longest command line (characters) written into a lock file.
_COMMAND_CHARS = 300


class WriteError(OSError):
    """A file could not be written; the previous file at that path, if any, is unchanged."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno N]" prefix
        return self.strerror or super().__str__()


def write_error(path: Path, error: OSError) -> WriteError:
    """One line naming the file and the cause (disk full, read-only, permission...)."""
    cause = error.strerror or str(error) or type(error).__name__
    return WriteError(error.errno, f"could not write {path}: {cause}; any earlier {path.name} "
                      "is unchanged")


# --- atomic files ------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (skipped where the filesystem cannot)."""
    _fsync(folder)


def _fsync(path: Path) -> None:
    """fsync a file or a folder (skipped where the filesystem cannot, e.g. a folder on some)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY if path.is_dir() else os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temporary(path: Path) -> Path:
    """The temporary file a writer of ``path`` fills: ``.NAME.tmp-PID`` beside it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_file(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder for a writer to fill; when the block ends
    normally, fsync it, rename it over ``path`` and fsync the folder. On any failure the
    temporary file is removed, ``path`` is left as it was, and an ``OSError`` becomes a
    ``WriteError`` naming ``path``. ``suffix`` ends the temporary name (writers that pick a
    format from it, such as ffmpeg)."""
    path = Path(path)
    tmp = _temporary(path).with_name(_temporary(path).name + suffix)
    try:
        try:
            yield tmp
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except WriteError:
            raise
        except OSError as error:
            raise write_error(path, error) from error
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename, fsync folder)."""
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def atomic_write_files(contents: Mapping[Path, bytes]) -> None:
    """Write several files all or nothing: every temporary file is written and fsynced before
    any is renamed into place; on a failure none is, the temporaries are removed, and a
    ``WriteError`` names the file that failed."""
    with contextlib.ExitStack() as stack:
        temporaries = {}
        for path, data in contents.items():
            tmp = stack.enter_context(_deferred(Path(path)))
            try:
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as error:
                raise write_error(Path(path), error) from error
            temporaries[Path(path)] = tmp
        for path, tmp in temporaries.items():
            os.replace(tmp, path)
        for folder in {path.parent for path in temporaries}:
            _fsync_dir(folder)


@contextlib.contextmanager
def atomic_folder(path: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a hidden temporary folder beside ``path`` (``.NAME.tmp-PID``) for a writer to fill;
    when the block ends normally, fsync it and rename it to ``path``. An existing ``path``
    (``overwrite``) is first renamed aside, then deleted. On any failure the temporary folder
    is removed, ``path`` is left as it was, and an ``OSError`` becomes a ``WriteError``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        for inner in sorted(tmp.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            _fsync(inner)  # files first, then their folders
        _fsync(tmp)
        if path.exists() and overwrite:
            os.replace(path, old)
        os.rename(tmp, path)
        _fsync_dir(path.parent)
    except OSError as error:
        if old.exists() and not path.exists():
            os.replace(old, path)
        raise write_error(path, error) from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _deferred(path: Path) -> Iterator[Path]:
    """A temporary path for ``path``, removed on the way out unless it was renamed."""
    tmp = _temporary(path)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def remove_temporaries(folder: Path) -> int:
    """Delete temporary files left by interrupted writers in ``folder``; return their count."""
    stale = list(folder.glob(".*.tmp-*")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- folder locks ------------------------------------------------------------------------------
class FolderBusyError(OSError):
    """Another process holds the folder's writer lock."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


@contextlib.contextmanager
def folder_lock(folder: Path, name: str, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (the file ``folder/name``) while writing into it.

    A second writer gets ``FolderBusyError`` naming the holder (its pid and command line). The
    lock is an ``flock``: it dies with its process, so a killed writer leaves no stale lock.
    ``what`` names the writer in messages ("training run", "evaluation report"). A folder this
    call created and nothing else wrote into is removed again on the way out, so a command that
    fails its checks leaves no trace."""
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(folder / name, what, sys.argv):
            yield
    finally:
        if created and [p.name for p in folder.iterdir()] == [name]:
            (folder / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()


@contextlib.contextmanager
def _locked(path: Path, what: str, argv: list[str]) -> Iterator[None]:
    """``folder_lock``'s flock on ``path``, its holder's pid and command line written in it."""
    folder = path.parent
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FolderBusyError(errno.EBUSY, f"{folder} is in use by another {what} "
                                  f"({holder}); wait for it to finish or choose another "
                                  "folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}: {' '.join(argv)[:_COMMAND_CHARS]}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()


def lock_holder(folder: Path, name: str) -> str | None:
    """Who holds ``folder_lock(folder, name)`` now ("pid N: command"), or None when nobody
    does (checked without waiting, and without taking the lock)."""
    path = folder / name
    if not path.is_file():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
