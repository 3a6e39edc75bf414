"""Steps run for real on this machine through LocalTransport, on a scratch tree."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from confluo.cluster_api import ApiAuth, ClusterApi
from confluo.inventory import load_inventory
from confluo.layout import node_paths
from confluo.remote import Remote
from confluo.steps import NodeFailed, NodeUpgrade, StepContext, TransferArchive
from confluo.transport.local import LocalTransport

INVENTORY = """
cluster: {{name: c, api_url: "http://127.0.0.1:9", credentials: {{username: a, password_env: HOME}}}}
target: {{version: 9.2.14, archive: {archive}}}
database: postgresql
defaults: {{transport: local, sudo: false, install: {{base: {base}}}, home: {home}}}
nodes: [{{name: n1, url: "http://127.0.0.1:9"}}, {{name: n2, url: "http://127.0.0.2:9"}}]
"""


def upgrade_for(tmp_path: Path, sha256: str) -> tuple[NodeUpgrade, StepContext]:
    archive = tmp_path / "atlassian-confluence-9.2.14.tar.gz"
    archive.write_bytes(b"release bytes" * 1000)
    inventory_file = tmp_path / "inventory.yaml"
    inventory_file.write_text(INVENTORY.format(archive=archive, base=tmp_path / "base", home=tmp_path / "home"))
    node = load_inventory(inventory_file).nodes[0]
    upgrade = NodeUpgrade(
        node=node,
        paths=node_paths(node, "9.2.14", str(tmp_path / "login-home")),
        old_install=str(tmp_path / "base/9.2.13"),
        target_version="9.2.14",
        archive_sha256=sha256,
        archive_bytes=archive.stat().st_size,
        local_archive=str(archive),
        shared_staging=False,
        customizations=(),
        drivers=(),
    )
    api = ClusterApi("http://127.0.0.1:9", ApiAuth("a", "b", bearer=False))
    return upgrade, StepContext(remote=Remote(node, LocalTransport(node.name)), api=api)


def test_transfer_verifies_what_arrived_and_is_then_done(tmp_path: Path) -> None:
    data = b"release bytes" * 1000
    upgrade, ctx = upgrade_for(tmp_path, hashlib.sha256(data).hexdigest())
    step = TransferArchive(upgrade)
    assert not step.is_done(ctx)
    step.apply(ctx)
    assert Path(upgrade.paths.staged_archive).read_bytes() == data
    assert step.bytes_sent == len(data)
    assert step.is_done(ctx)


def test_transfer_with_a_different_checksum_fails_and_leaves_nothing_behind(tmp_path: Path) -> None:
    upgrade, ctx = upgrade_for(tmp_path, "0" * 64)
    with pytest.raises(NodeFailed, match="does not have sha256"):
        TransferArchive(upgrade).apply(ctx)
    staging = Path(upgrade.paths.staged_archive).parent
    assert list(staging.iterdir()) == []
