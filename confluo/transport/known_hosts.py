"""known_hosts read as OpenSSH reads it: hashed names, @revoked keys, @cert-authority lines ignored, a bad line
skipped with a warning; only a regular file, bounded in size."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry

from confluo.transport.base import ConnectionFailed

MAX_KNOWN_HOSTS_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class KnownHosts:
    """A known_hosts file as OpenSSH reads it: the keys to trust, the keys marked @revoked, and what was skipped."""

    entries: tuple[tuple[str, paramiko.PKey], ...]  # (host name, or a hashed |1|... name; its key)
    revoked: frozenset[tuple[str, str]]  # (key type, base64)
    skipped: tuple[str, ...]  # one line per line skipped, for a warning

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return (key.get_name(), key.get_base64()) in self.revoked


def read_known_hosts(path: Path) -> KnownHosts:
    """Reads known_hosts like OpenSSH: hashed names, `@revoked` keys refused, `@cert-authority` lines ignored
    (paramiko checks no certificates), and a line that cannot be read skipped with a warning.

    A missing file knows no host. A directory, a FIFO or an unreadable file raises ConnectionFailed.
    """
    text = _known_hosts_text(path)
    entries: list[tuple[str, paramiko.PKey]] = []
    revoked: set[tuple[str, str]] = set()
    skipped: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = None
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            line = line.strip()
            if marker not in ("@cert-authority", "@revoked"):
                skipped.append(f"{path}:{number}: skipped: unknown marker")
                continue
        try:
            entry = HostKeyEntry.from_line(line, number)
        except Exception:  # a line of a file anyone may have edited: whatever paramiko raises, it is one bad line
            entry = None
        if entry is None or entry.key is None:
            skipped.append(f"{path}:{number}: skipped: not a host key line paramiko can read")
        elif marker == "@revoked":
            revoked.add((entry.key.get_name(), entry.key.get_base64()))
        elif marker is None:
            entries += [(name, entry.key) for name in entry.hostnames]
    return KnownHosts(tuple(entries), frozenset(revoked), tuple(skipped))


def _known_hosts_text(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise ConnectionFailed(f"cannot read the known_hosts file {path}: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ConnectionFailed(f"the known_hosts file {path} is not a regular file (a directory, pipe or device)")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_KNOWN_HOSTS_BYTES + 1)
    if len(data) > MAX_KNOWN_HOSTS_BYTES:
        raise ConnectionFailed(f"the known_hosts file {path} is larger than {MAX_KNOWN_HOSTS_BYTES >> 20} MiB")
    return data.decode("utf-8", "replace")  # a bad byte spoils only its own line, which then does not parse
