"""known_hosts is read as OpenSSH reads it; a bad line is skipped, a wrong kind of file is a clear error."""

import base64
import os
from pathlib import Path

import pytest

from confluo.transport.base import ConnectionFailed
from confluo.transport.known_hosts import read_known_hosts

_BLOB = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))).decode()
OTHER = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(1, 33))).decode()
HASHED = "|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg="


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(text)
    return path


def test_plain_hashed_and_bracketed_names_are_read(tmp_path: Path) -> None:
    known = read_known_hosts(
        _write(
            tmp_path,
            f"node1,10.0.0.11 ssh-ed25519 {_BLOB}\n{HASHED} ssh-ed25519 {_BLOB}\n[node2]:2222 ssh-ed25519 {_BLOB}\n",
        )
    )
    assert [name for name, _ in known.entries] == ["node1", "10.0.0.11", HASHED, "[node2]:2222"]
    assert known.skipped == ()


def test_markers_are_understood(tmp_path: Path) -> None:
    known = read_known_hosts(
        _write(
            tmp_path,
            f"@cert-authority *.example.com ssh-ed25519 {OTHER}\n"
            f"@revoked * ssh-ed25519 {OTHER}\n"
            f"node1 ssh-ed25519 {_BLOB}\n",
        )
    )
    assert [name for name, _ in known.entries] == ["node1"]  # the CA line is no host key
    assert known.revoked == {("ssh-ed25519", OTHER)}
    assert known.skipped == ()


@pytest.mark.parametrize(
    "line",
    [
        "node1 ssh-ed25519",  # too few fields
        "node1 ssh-ed25519 !!!notbase64!!!",
        "node1 ssh-ed25519 AAAA",  # base64, but not a key
        "node1 ssh-unknown-type AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
        "@weird node1 ssh-ed25519 " + _BLOB,
        "\x00\x01 binary junk",
    ],
    ids=["fields", "base64", "not-a-key", "key-type", "marker", "junk"],
)
def test_a_bad_line_is_skipped_with_a_warning_and_the_rest_is_read(tmp_path: Path, line: str) -> None:
    known = read_known_hosts(_write(tmp_path, f"{line}\nnode1 ssh-ed25519 {_BLOB}\n"))
    assert [name for name, _ in known.entries] == ["node1"]
    assert known.skipped == (f"{tmp_path / 'known_hosts'}:1: skipped: " + known.skipped[0].split(": skipped: ")[1],)
    assert "\n" not in known.skipped[0] and "\x00" not in known.skipped[0]


def test_a_missing_file_knows_no_host(tmp_path: Path) -> None:
    assert read_known_hosts(tmp_path / "absent").entries == ()


def test_a_directory_or_fifo_is_a_clear_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    for path in (tmp_path, tmp_path / "fifo"):
        with pytest.raises(ConnectionFailed, match="not a regular file"):
            read_known_hosts(path)
