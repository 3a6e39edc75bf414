"""A partly transferred archive is continued, not sent again: TransferArchive over the real LocalTransport, on a
scratch tree. The node's `.part` is checked against the archive's own first bytes before anything is appended."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from confluo.api.base import ApiAuth
from confluo.api.zdu import HttpClusterApi
from confluo.inventory import load_inventory
from confluo.layout import node_paths
from confluo.steps.base import Host, StepContext
from confluo.steps.stage import TransferArchive, prefix_sha256
from confluo.transport.local import LocalTransport
from confluo.transport.remote import Remote

INVENTORY = """
cluster: {{name: c, api_url: "http://127.0.0.1:9", credentials: {{username: a, password_env: HOME}}}}
target: {{version: 9.2.14, archive: {archive}}}
database: postgresql
defaults: {{transport: local, sudo: false, install: {{base: {base}}}, home: {home}}}
nodes: [{{name: n1, url: "http://127.0.0.1:9"}}, {{name: n2, url: "http://127.0.0.2:9"}}]
"""
SIZE = 300_000


class Staging:
    """The archive here, the step that sends it, and what the step said while it worked."""

    def __init__(self, tmp_path: Path) -> None:
        self.data = os.urandom(SIZE)
        archive = tmp_path / "atlassian-confluence-9.2.14.tar.gz"
        archive.write_bytes(self.data)
        inventory_file = tmp_path / "inventory.yaml"
        inventory_file.write_text(INVENTORY.format(archive=archive, base=tmp_path / "b", home=tmp_path / "h"))
        node = load_inventory(inventory_file).nodes[0]
        self.step = TransferArchive(
            Host(node),
            local_archive=str(archive),
            sha256=hashlib.sha256(self.data).hexdigest(),
            size=SIZE,
            staged=node_paths(node, "9.2.14", str(tmp_path / "login-home")).staged_archive,
            shared=False,
        )
        self.said: list[str] = []
        api = HttpClusterApi("http://127.0.0.1:9", ApiAuth("a", "b", bearer=False))
        remote = Remote(node, LocalTransport(node.name))
        self.ctx = StepContext(api=api, remote=remote, on_wait=self.said.append)
        self.part = Path(self.step.partial)

    def leave_partial(self, content: bytes) -> None:
        """What an interrupted run left on the node."""
        self.part.parent.mkdir(parents=True, exist_ok=True)
        self.part.write_bytes(content)

    def staged_whole(self) -> bool:
        return Path(self.step.staged).read_bytes() == self.data and not self.part.exists()


@pytest.fixture
def staging(tmp_path: Path) -> Staging:
    return Staging(tmp_path)


def test_a_partial_upload_that_is_the_archives_beginning_is_continued_and_only_the_rest_sent(
    staging: Staging,
) -> None:
    held = SIZE * 9 // 10  # interrupted at 90 %
    staging.leave_partial(staging.data[:held])
    figures = staging.step.apply(staging.ctx)
    assert figures == {"bytes_sent": SIZE - held, "continued_from": held}
    assert staging.staged_whole()
    assert f"continuing {staging.part} from byte {held} of {SIZE}" in staging.said
    assert staging.step.is_done(staging.ctx)


def test_a_partial_upload_with_other_bytes_is_discarded_and_sent_again_whole(staging: Staging) -> None:
    corrupted = bytearray(staging.data[: SIZE // 2])
    corrupted[1000] ^= 0xFF  # one flipped byte, well inside the prefix
    staging.leave_partial(bytes(corrupted))
    assert staging.step.apply(staging.ctx) == {"bytes_sent": SIZE, "continued_from": 0}
    assert staging.staged_whole()
    assert any("not this archive's beginning" in said for said in staging.said)


def test_a_partial_upload_longer_than_the_archive_is_sent_again_whole(staging: Staging) -> None:
    staging.leave_partial(staging.data + b"more")
    assert staging.step.apply(staging.ctx)["bytes_sent"] == SIZE
    assert staging.staged_whole()


def test_a_complete_partial_upload_killed_before_its_rename_sends_nothing(staging: Staging) -> None:
    staging.leave_partial(staging.data)
    assert staging.step.apply(staging.ctx) == {"bytes_sent": 0, "continued_from": SIZE}
    assert staging.staged_whole()


def test_the_local_transport_appends_only_the_bytes_after_the_offset(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    source.write_bytes(b"0123456789")
    target.write_bytes(b"0123")
    assert LocalTransport("n1").upload(str(source), str(target), timeout=10, offset=4) == 6
    assert target.read_bytes() == b"0123456789"
    assert LocalTransport("n1").upload(str(source), str(target), timeout=10) == 10
    assert target.read_bytes() == b"0123456789", "offset 0 writes the file anew"


def test_prefix_sha256_hashes_exactly_the_first_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 3_000_000)
    assert prefix_sha256(str(path), 2_500_000) == hashlib.sha256(b"a" * 2_500_000).hexdigest()
