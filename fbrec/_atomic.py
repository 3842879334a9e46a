"""Directories fbrec writes: filled in a temp directory beside the target, then swapped into place.

Ownership: every directory fbrec writes carries a marker file (`.fbrec-output`, JSON with its kind). fbrec replaces
only directories that carry the marker, or that do not exist or are empty; anything else is the user's and is never
touched. Temp directories are named `.<target>.fbrec-tmp-<random>` and get the marker first, so a write killed at
any instant leaves something fbrec can recognise and clean up on the next write of the same target.

Swap: on Linux `renameat2(RENAME_EXCHANGE)` exchanges the old and new directory in one atomic step, so a reader or
a crash sees either the old or the new directory whole; elsewhere two renames, and `recover()` restores the old
one if a crash fell between them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fbrec.errors import ConfigError

MARKER = ".fbrec-output"
_TMP, _OLD = ".fbrec-tmp-", ".fbrec-old-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _libc():
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return lib if hasattr(lib, "renameat2") else None
    except OSError:
        return None


_LIBC = _libc()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two existing paths; False where the platform cannot."""
    if _LIBC is None:
        return False
    rc = _LIBC.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (the checksums of bundles and profile folders)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_sha256(path: Path) -> str:
    """sha256 over a directory's files (relative name + each file's sha256, in name order), or of one file; anything
    not a regular file (a link, a device) enters by name and kind, so swapping one in changes the digest."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    h = hashlib.sha256()
    for entry in sorted(p for p in path.rglob("*")):
        name = entry.relative_to(path).as_posix()
        if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
            h.update(f"{name}\0special\n".encode())
        elif entry.is_file():
            h.update(f"{name}\0{file_sha256(entry)}\n".encode())
    return h.hexdigest()


def is_fbrec_output(path: Path) -> bool:
    return (Path(path) / MARKER).is_file()


def marker_kind(path: Path) -> str | None:
    try:
        return json.loads((Path(path) / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def write_marker(path: Path, kind: str) -> None:
    from fbrec import __version__

    (Path(path) / MARKER).write_text(json.dumps({"kind": kind, "fbrec_version": __version__,
                                                 "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))


def check_replaceable(out: Path, kind: str, *, overwrite: bool = True, option: str = "--out") -> None:
    """Raise unless `out` may become a new fbrec `kind` directory: absent, an empty directory, or (with overwrite)
    an fbrec directory of the same kind. Nothing is touched."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise ConfigError(f"{option} {str(out)!r} exists and is not a directory",
                          rule="fbrec writes a new directory there and never replaces a file",
                          fix=f"choose another {option}")
    if not any(out.iterdir()):
        return
    found = marker_kind(out)
    if found is None:
        raise ConfigError(f"{option} {str(out)!r} is a non-empty directory fbrec did not write",
                          rule="fbrec only replaces directories it created (they hold a .fbrec-output marker)",
                          fix=f"choose a new or empty {option}; your files there were not touched")
    if found != kind:
        raise ConfigError(f"{option} {str(out)!r} holds an fbrec {found}, not a {kind}",
                          rule=f"a {kind} replaces only a {kind}", fix=f"choose another {option}")
    if not overwrite:
        raise ConfigError(f"{kind} directory {str(out)!r} already exists",
                          rule=f"an existing {kind} is never overwritten silently",
                          fix=f"pass --overwrite or choose another {option}")


def _owned_name(prefix: str) -> str:
    """`<prefix><random>.<pid>@<host>`: the writer's process, so another writer can tell a live temp from a dead one."""
    return f"{prefix}{uuid.uuid4().hex[:12]}.{os.getpid()}@{socket.gethostname()}"


def _writer_dead(path: Path) -> bool:
    """A temp's writer is gone: a process of this host that no longer exists (or a name without an owner, from an
    older fbrec). Another host's temp is never judged dead: its writer may be alive over a shared filesystem."""
    owner = path.name.rsplit(".", 1)[-1]
    pid, at, host = owner.partition("@")
    if not at or not pid.isdigit():
        return True
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def stale_temps(out: Path) -> list[Path]:
    """Temp or old directories of earlier writes to `out` whose writer died before it finished (a concurrent
    writer's live temp is not stale)."""
    out = Path(out)
    if not out.parent.is_dir():
        return []
    found = []
    for prefix in (_TMP, _OLD):
        found += [p for p in out.parent.glob(f".{out.name}{prefix}*")
                  if p.is_dir() and is_fbrec_output(p) and _writer_dead(p)]
    return sorted(found)


def recover(out: Path) -> None:
    """Clean what killed writes to `out` left beside it; if a crash fell between the two renames of a fallback
    swap (no `out`, an old copy beside it), put the old copy back first."""
    out = Path(out)
    leftovers = stale_temps(out)
    olds = [p for p in leftovers if _OLD in p.name]
    if not out.exists() and olds:
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        newest.rename(out)
        leftovers.remove(newest)
    for p in leftovers:
        shutil.rmtree(p, ignore_errors=True)


def _mode_for_new_dirs() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def new_temp_dir(out: Path, kind: str) -> Path:
    """A marked temp directory beside `out` with the permissions of a plain mkdir (readable by others under the
    usual umask, unlike mkdtemp's 0700)."""
    out = Path(out)
    tmp = out.parent / f".{out.name}{_owned_name(_TMP)}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(mode=_mode_for_new_dirs())
        write_marker(tmp, kind)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConfigError(f"cannot write {str(out)!r}: {exc.strerror or exc}",
                          rule=f"fbrec writes the {kind} into a new directory beside it, in {str(out.parent)!r}",
                          fix="choose an --out in a writable directory") from None
    return tmp


def swap_into_place(tmp: Path, out: Path) -> None:
    """Make the finished temp directory `out`; an existing `out` (already checked replaceable) is removed after."""
    tmp, out = Path(tmp), Path(out)
    if out.exists() and out.is_dir() and not any(out.iterdir()):
        out.rmdir()   # an empty directory the user made for us
    if not out.exists():
        tmp.rename(out)
        return
    if _exchange(tmp, out):            # tmp now holds the old directory
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = out.parent / f".{out.name}{_owned_name(_OLD)}"
    out.rename(old)                    # a crash here leaves `old` whole; recover() renames it back
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_directory(out: str | Path, kind: str, *, overwrite: bool = True, option: str = "--out"
                     ) -> Iterator[Path]:
    """Yield a marked temp dir; on success it replaces `out`, on any error it is removed and `out` is untouched.

    Refuses (before writing anything) to replace a file, a non-empty directory fbrec did not write, an fbrec
    directory of another kind, or, without overwrite, an existing one."""
    out = Path(out)
    check_replaceable(out, kind, overwrite=overwrite, option=option)
    recover(out)
    tmp = new_temp_dir(out, kind)
    try:
        yield tmp
        # again: a concurrent writer may have created `out` meanwhile (refused without overwrite, never half-done)
        check_replaceable(out, kind, overwrite=overwrite, option=option)
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def new_file_path(out: str | Path, option: str = "--out") -> Path:
    """Check that `out` can become a new file: nothing there yet (fbrec never overwrites a file it was not asked to
    create) and a directory to put it in."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise ConfigError(f"{option} {str(out)!r} already exists" + (" and is a directory" if out.is_dir() else ""),
                          rule="fbrec writes reports to new files only", fix=f"choose a new {option} path")
    if not out.parent.is_dir():
        raise ConfigError(f"{option} {str(out)!r}: folder {str(out.parent)!r} does not exist",
                          rule="the report's folder must exist", fix="create it first or choose another path")
    return out


def write_new_file(out: str | Path, write, option: str = "--out") -> Path:
    """`write(tmp_path)` fills a temp file beside `out`, which is then linked into place only if `out` still does
    not exist (no overwrite, even in a race); the temp file is always removed."""
    out = new_file_path(out, option)
    tmp = out.parent / f".{out.name}{_owned_name(_TMP)}"
    try:
        write(tmp)
        os.link(tmp, out)   # fails if `out` appeared meanwhile: nothing is overwritten
    except FileExistsError:
        raise ConfigError(f"{option} {str(out)!r} already exists", rule="fbrec writes reports to new files only",
                          fix=f"choose a new {option} path") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {str(out)!r}: {exc.strerror or exc}", rule="the folder must be writable",
                          fix=f"choose another {option}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out
