"""Download a real dataset from where it is published, check every file against its pinned size and sha256, and
place it in the data directory in one rename.

Everything in flight lives in `<data dir>/.<name>.fetching/` (fbrec's own folder): downloads resume from their
`.part` files where the server allows ranges and restart where it does not; the dataset's folder appears only once
every file matched its pin, so a crash or a refused download leaves either no folder or the whole dataset. An
existing folder is verified, never replaced. FBREC_DATA_MIRROR serves the same paths from another host
(`<mirror>/<host>/<path>`), e.g. an internal mirror; FBREC_FETCH_TIMEOUT is the seconds without data after which a
download counts as stalled (default 60).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fbrec._atomic import file_sha256
from fbrec.data.location import data_dir
from fbrec.data.sources import SOURCES, Download, Source
from fbrec.errors import DataValidationError, UnknownNameError

TRIES = 3                        # a cut or stalled download resumes this many times before the fetch gives up
CHUNK = 1 << 16
ALIASES = {"movielens-100k-semisynthetic": "movielens-100k"}   # derived datasets read another one's files

Progress = Callable[[str, int, int | None], None]   # (url, bytes so far, total bytes or None)


class FetchError(DataValidationError):
    """A download that failed or did not match its pin; names the URL and how to place the files by hand."""


@dataclass(frozen=True)
class Fetched:
    name: str
    path: Path
    downloaded: bool        # False: the folder was already there and matched every pin


def source(name: str) -> Source:
    """The source of a fetchable dataset (a derived dataset answers with the one whose files it reads)."""
    name = ALIASES.get(name, name)
    if name not in SOURCES:
        raise UnknownNameError("fetchable dataset", name, SOURCES)
    return SOURCES[name]


def verify(src: Source, folder: Path) -> list[str]:
    """What differs between a dataset folder and its pins (empty when every pinned file matches)."""
    problems = []
    for rel, (size, digest) in src.pins.items():
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif path.stat().st_size != size:
            problems.append(f"{rel} has {path.stat().st_size} bytes, expected {size}")
        elif (got := file_sha256(path)) != digest:
            problems.append(f"{rel} has sha256 {got}, expected {digest}")
    return problems


def fetch(name: str, root: str | Path | None = None, *, progress: Progress | None = None) -> Fetched:
    """The dataset `name` in `root` (default: the data directory), downloaded and checked if it is not there yet."""
    src = source(name)
    root = Path(root) if root is not None else data_dir()
    target = root / src.name
    if target.exists():
        problems = verify(src, target)
        if problems:
            raise DataValidationError(
                f"dataset {src.name!r}: {str(target)!r} exists but is not the pinned release: {'; '.join(problems)}",
                rule="fbrec never replaces a folder it did not write",
                fix=f"move {str(target)!r} aside and fetch again, or set FBREC_DATA_DIR to another folder")
        return Fetched(src.name, target, downloaded=False)
    staging = root / f".{src.name}.fetching"
    try:
        (staging / "downloads").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot write to the data directory {str(root)!r}: {exc.strerror or exc}",
                         rule="fetched datasets are written under the data directory",
                         fix="set FBREC_DATA_DIR to a folder you can write") from exc
    tree = staging / "tree"
    shutil.rmtree(tree, ignore_errors=True)                   # an earlier, interrupted unpack (fbrec's own)
    try:
        for download in src.downloads:
            _place(src, download, _download_once(src, download, staging / "downloads", target, progress), tree, target)
    except FetchError:
        if not any(staging.rglob("*.part")) and not any((staging / "downloads").iterdir()):
            shutil.rmtree(staging, ignore_errors=True)         # nothing arrived: nothing to resume from
        raise
    os.replace(tree, target)                                  # the dataset appears whole, in one rename
    shutil.rmtree(staging, ignore_errors=True)
    return Fetched(src.name, target, downloaded=True)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _url(url: str) -> str:
    mirror = os.environ.get("FBREC_DATA_MIRROR")
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def _by_hand(src: Source, target: Path) -> str:
    urls = ", ".join(d.url for d in src.downloads[:2]) + (" ..." if len(src.downloads) > 2 else "")
    unzip = " (unzipped)" if any(m for d in src.downloads for m in d.files.values()) else ""
    return (f"check the connection and run `fbrec data fetch {src.name}` again (it resumes), or download {urls} "
            f"yourself and place {', '.join(src.pins)}{unzip} in {target}")


def _download_once(src: Source, download: Download, folder: Path, target: Path, progress: Progress | None) -> Path:
    """The downloaded file (resumed across tries and runs from its .part); kept until its bytes are placed."""
    done = folder / (hashlib.sha256(download.url.encode()).hexdigest()[:12] + "-" + Path(urlsplit(download.url).path).name)
    if done.exists():
        return done
    part = done.with_name(done.name + ".part")
    url = _url(download.url)
    timeout = float(os.environ.get("FBREC_FETCH_TIMEOUT", "60"))
    last, tries = "", 0
    while tries < TRIES:
        tries += 1
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "fbrec", **({"Range": f"bytes={have}-"}
                                                                                  if have else {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if have and response.status != 206:          # the server ignored the range: start over
                    have = 0
                length = response.headers.get("Content-Length")
                total = have + int(length) if length is not None else None
                with open(part, "ab" if have else "wb") as out:
                    got = have
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        got += len(chunk)
                        if progress:
                            progress(url, got, total)
                if total is not None and got < total:
                    last = f"the body stopped at {got} of {total} bytes"
                    continue
            part.replace(done)
            return done
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:                      # the .part is not a prefix the server knows
                part.unlink()
                last = "the server refused to resume"
                continue
            if exc.code < 500:
                raise FetchError(f"dataset {src.name!r}: {url} answered HTTP {exc.code} {exc.reason}",
                                 rule="datasets are downloaded from their publisher's URL", fix=_by_hand(src, target)) from exc
            last = f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            last = (f"no data for {timeout:g} s (FBREC_FETCH_TIMEOUT)" if isinstance(reason, TimeoutError)
                    else f"{type(reason).__name__}: {reason}")
            if isinstance(exc, urllib.error.URLError) and not isinstance(reason, TimeoutError | ConnectionError):
                break                                         # no route or no name: trying again will not help
    raise FetchError(f"dataset {src.name!r}: downloading {url} failed after {tries} tr{'y' if tries == 1 else 'ies'} "
                     f"({last})",
                     rule="datasets are downloaded from their publisher's URL; what arrived is kept and resumed",
                     fix=_by_hand(src, target))


def _place(src: Source, download: Download, path: Path, tree: Path, target: Path) -> None:
    """Write the files a download holds under `tree`, each checked against its pin; a mismatch discards the
    download so the next fetch starts it again."""
    data = path.read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data)) if any(download.files.values()) else None
    except zipfile.BadZipFile:
        path.unlink()
        raise FetchError(f"dataset {src.name!r}: {_url(download.url)} is not a zip archive ({len(data)} bytes)",
                         rule="the download must be the publisher's archive", fix=_by_hand(src, target)) from None
    for rel, member in download.files.items():
        if archive is not None:
            try:
                body = archive.read(member)
            except KeyError:
                path.unlink()
                raise FetchError(f"dataset {src.name!r}: {_url(download.url)} has no member {member!r}",
                                 rule="the download must be the publisher's archive", fix=_by_hand(src, target)) from None
        else:
            body = download.derive(data) if download.derive else data
        size, digest = src.pins[rel]
        if len(body) != size or _sha256(body) != digest:
            path.unlink()
            raise FetchError(f"dataset {src.name!r}: {rel} from {_url(download.url)} has {len(body)} bytes and "
                             f"sha256 {_sha256(body)}; the pinned release has {size} bytes and sha256 {digest}",
                             rule="every fetched file must match the release fbrec was tested on",
                             fix="the download was discarded; run the fetch again, and if it repeats the "
                                 "publisher changed the file: " + _by_hand(src, target))
        out = tree / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(body)
