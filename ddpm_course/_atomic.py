"""Writing a pair of files atomically: both or neither, and never a stray file.

Each file is written under a temporary name in its destination's folder
(``.NAME.<pid>.<random>.tmp``: the process id tells a later run whether its writer is gone) and
flushed to the disk; then the two are renamed into place, the first before the second. If the
second rename fails the first destination's previous content is put back (from a hard link, or
a copy, made aside as ``.NAME.<pid>.<random>.bak``), or the new file removed. Without
``overwrite`` a destination that appears meanwhile is never replaced (a hard link refuses it).

``checkpoint.save_checkpoint`` writes its weights and JSON through :func:`_replace_pair`;
``checkpoint.clean_stale_temporaries`` removes what a killed writer left. Nothing here knows
what the files hold.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _write_temporary(folder: Path, name: str, data: bytes) -> Path:
    """``data`` in a new temporary file next to its destination (``.NAME.<pid>.<random>.tmp``: the
    process id tells a later run whether its writer is gone), flushed to the disk."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.{os.getpid()}.", suffix=".tmp")
    try:
        _usual_permissions(fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _usual_permissions(fd: int) -> None:
    """mkstemp makes files only the owner can read; give the file what ``open()`` would (0o666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o666 & ~umask)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or no way to tell: leave its files alone
    return True



def _glob_escape(name: str) -> str:
    """``name`` with the glob wildcards * ? [ taken literally."""
    import glob

    return glob.escape(name)


def _sync_folder(folder: Path) -> None:
    try:  # make the renames themselves durable (POSIX; not possible everywhere)
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _move(tmp: Path, dest: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, dest)
        return
    try:  # a hard link never replaces a file that appeared since the check
        os.link(tmp, dest)
    except FileExistsError:
        raise FileExistsError(f"{dest} appeared while saving; pass overwrite=True to replace it") from None
    except OSError:  # a file system without hard links
        if dest.exists():
            raise FileExistsError(f"{dest} appeared while saving; pass overwrite=True to replace it") from None
        os.replace(tmp, dest)
    else:
        tmp.unlink()


def _backup(path: Path) -> Path | None:
    """A second name for the existing ``path`` (a hard link, or a copy where links are not
    possible), so that it can be put back; None when ``path`` does not exist."""
    if not path.exists():
        return None
    backup = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.bak")
    try:
        os.link(path, backup)
    except OSError:
        import shutil

        shutil.copyfile(path, backup)
    return backup


def _replace_pair(folder: Path, dests: tuple[Path, Path], blobs: tuple[bytes, bytes], overwrite: bool) -> None:
    """Write both blobs to temporary files, then rename them into place, weights first; if the
    second rename fails, the previous weights file is put back (or the new one removed)."""
    weights_path, meta_path = dests
    temps: list[Path] = []
    backup: Path | None = None
    moved = False  # True while the new weights sit next to the old JSON
    try:
        for dest, blob in zip(dests, blobs, strict=True):
            temps.append(_write_temporary(folder, dest.name, blob))
        backup = _backup(weights_path)
        _move(temps[0], weights_path, overwrite)
        moved = True
        _move(temps[1], meta_path, overwrite)
        moved = False  # both in place: the new checkpoint is complete
        _sync_folder(folder)
    except BaseException:
        if moved:
            if backup is not None:
                os.replace(backup, weights_path)
            else:
                weights_path.unlink(missing_ok=True)
        raise
    finally:
        for p in [*temps, backup]:
            if p is not None:
                p.unlink(missing_ok=True)
