"""The release archive on this machine: where it is, its checksum, and the stock files inside it."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import httpx

from confluo.errors import ConfluoError, ExitCode
from confluo.layout import archive_name
from confluo.probe.facts import Archive

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "confluo" / "archives"


class ArchiveError(ConfluoError):
    exit_code = ExitCode.REFUSED


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fetch(source: str, version: str | None, key: str = "target.archive") -> Path:
    """A local path as it is; a URL downloaded once into the cache (kept, so a re-run does not download again).
    Without a version the cached file is named after the URL's last part."""
    if not source.startswith(("http://", "https://")):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ArchiveError(f"{key}: no such file: {path}")
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    name = archive_name(version) if version else source.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    target = CACHE_DIR / (name or "base-archive.tar.gz")
    if target.is_file():
        return target
    partial = target.with_suffix(".part")
    try:
        with httpx.stream("GET", source, follow_redirects=True, timeout=60) as response:
            response.raise_for_status()
            with partial.open("wb") as handle:
                for block in response.iter_bytes(1024 * 1024):
                    handle.write(block)
    except httpx.HTTPError as exc:
        raise ArchiveError(f"{key}: download of {source} failed: {exc}") from exc
    partial.replace(target)
    return target


def read_archive(path: Path, version: str | None, wanted: tuple[str, ...]) -> Archive:
    """Checks the archive's single top directory is atlassian-confluence-VERSION and reads the stock files.
    Without a version (the running release's archive), the version is the one the top directory names."""
    top = f"atlassian-confluence-{version}" if version else None
    stock: dict[str, str] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if top is None and name.startswith(_TOP_PREFIX):
                    top = name.split("/", 1)[0]
                if name.split("/", 1)[0] != top:
                    raise ArchiveError(
                        f"{path}: expected everything under {top or _TOP_PREFIX + 'VERSION'}/, found {member.name}"
                    )
                relative = name.split("/", 1)[1] if "/" in name else ""
                if relative in wanted and member.isfile():
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        stock[relative] = extracted.read().decode(errors="replace")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"{path}: not a readable .tar.gz archive: {exc}") from exc
    if top is None:
        raise ArchiveError(f"{path}: empty, or not a Confluence archive (no {_TOP_PREFIX}VERSION/ directory)")
    found = top.removeprefix(_TOP_PREFIX)
    return Archive(path, found, sha256_of(path), path.stat().st_size, stock)


_TOP_PREFIX = "atlassian-confluence-"
