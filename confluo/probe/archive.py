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


def fetch(source: str, version: str) -> Path:
    """A local path as it is; a URL downloaded once into the cache (kept, so a re-run does not download again)."""
    if not source.startswith(("http://", "https://")):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ArchiveError(f"target.archive: no such file: {path}")
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    target = CACHE_DIR / archive_name(version)
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
        raise ArchiveError(f"target.archive: download of {source} failed: {exc}") from exc
    partial.replace(target)
    return target


def read_archive(path: Path, version: str, wanted: tuple[str, ...]) -> Archive:
    """Checks the archive's single top directory is atlassian-confluence-VERSION and reads the stock files."""
    top = f"atlassian-confluence-{version}"
    stock: dict[str, str] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name.split("/", 1)[0] != top:
                    raise ArchiveError(f"{path}: expected everything under {top}/, found {member.name}")
                relative = name.split("/", 1)[1] if "/" in name else ""
                if relative in wanted and member.isfile():
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        stock[relative] = extracted.read().decode(errors="replace")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"{path}: not a readable .tar.gz archive: {exc}") from exc
    return Archive(path, version, sha256_of(path), path.stat().st_size, stock)
