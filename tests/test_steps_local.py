"""Steps run for real on this machine through LocalTransport, on a scratch tree."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from confluo.api.base import ApiAuth
from confluo.api.zdu import HttpClusterApi
from confluo.inventory import load_inventory
from confluo.layout import node_paths
from confluo.steps.base import Host, NodeFailed, StepContext
from confluo.steps.stage import TransferArchive
from confluo.transport.base import CommandFailed
from confluo.transport.local import LocalTransport
from confluo.transport.remote import Remote

INVENTORY = """
cluster: {{name: c, api_url: "http://127.0.0.1:9", credentials: {{username: a, password_env: HOME}}}}
target: {{version: 9.2.14, archive: {archive}}}
database: postgresql
defaults: {{transport: local, sudo: false, install: {{base: {base}}}, home: {home}}}
nodes: [{{name: n1, url: "http://127.0.0.1:9"}}, {{name: n2, url: "http://127.0.0.2:9"}}]
"""


def transfer_for(tmp_path: Path, sha256: str) -> tuple[TransferArchive, StepContext]:
    archive = tmp_path / "atlassian-confluence-9.2.14.tar.gz"
    archive.write_bytes(b"release bytes" * 1000)
    inventory_file = tmp_path / "inventory.yaml"
    inventory_file.write_text(INVENTORY.format(archive=archive, base=tmp_path / "base", home=tmp_path / "home"))
    node = load_inventory(inventory_file).nodes[0]
    step = TransferArchive(
        Host(node),
        local_archive=str(archive),
        sha256=sha256,
        size=archive.stat().st_size,
        staged=node_paths(node, "9.2.14", str(tmp_path / "login-home")).staged_archive,
        shared=False,
    )
    api = HttpClusterApi("http://127.0.0.1:9", ApiAuth("a", "b", bearer=False))
    return step, StepContext(remote=Remote(node, LocalTransport(node.name)), api=api)


def test_transfer_verifies_what_arrived_and_is_then_done(tmp_path: Path) -> None:
    data = b"release bytes" * 1000
    step, ctx = transfer_for(tmp_path, hashlib.sha256(data).hexdigest())
    assert not step.is_done(ctx)
    assert step.apply(ctx) == {"bytes_sent": len(data), "continued_from": 0}
    assert Path(step.staged).read_bytes() == data
    assert step.is_done(ctx)


def test_transfer_with_a_different_checksum_fails_and_leaves_nothing_behind(tmp_path: Path) -> None:
    step, ctx = transfer_for(tmp_path, "0" * 64)
    with pytest.raises(NodeFailed, match="does not have sha256"):
        step.apply(ctx)
    assert list(Path(step.staged).parent.iterdir()) == []


def test_a_failed_script_is_named_briefly_and_its_output_kept() -> None:
    script = "echo starting\n" + "\n".join(f"test -e /nonexistent/{n} || true" for n in range(400)) + "\nexit 3"
    with pytest.raises(CommandFailed) as failed:
        LocalTransport("n1").run(script)
    first, *rest = str(failed.value).splitlines()
    assert first == f"n1: `echo starting … ({len(script)} characters in all, in the log)` exited 3"
    assert rest == ["starting"]
    assert failed.value.result.command == script  # the log writes what ran, whole
