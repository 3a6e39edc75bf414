"""Customizations carried by the three-way merge, against the lab: the release's stock files changed (a new
Connector attribute, a changed default, a new JVM flag) and every node carries its administrator's edits (an
HTTPS proxy Connector, threads, heap, Crowd SSO, planted passwords)."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from labkit import NEXT, LabHandle, start_lab
from labruns import confluo, variant

from confluo.lab.provision import PLANTED_SECRETS, PROXY_NAME
from confluo.lab.tarball import sha256_of

pytestmark = pytest.mark.lab

SERVER_XML = "conf/server.xml"
INIT = "confluence/WEB-INF/classes/confluence-init.properties"


@pytest.fixture(scope="module")
def shared_lab() -> Iterator[LabHandle]:
    with start_lab() as handle:
        yield handle


def install_of(lab: LabHandle, node: str) -> Path:
    return Path(lab.node(node)["install_dir"]).resolve()


def state_dir() -> Path:
    return Path(os.environ.get("TMPDIR", "/tmp")) / "confluo-test-state"


def assert_no_secret_in(*texts: str) -> None:
    for secret in PLANTED_SECRETS:
        for text in texts:
            assert secret not in text


def everything_confluo_wrote(log_file: Path) -> list[str]:
    written = [log_file.read_text()]
    written += [p.read_text(errors="replace") for p in state_dir().rglob("*") if p.is_file()]
    return written


def test_the_admins_and_the_releases_changes_both_reach_every_node_and_no_secret_leaks(
    lab: LabHandle, tmp_path: Path
) -> None:
    plan = confluo("plan", "-i", str(lab.inventory), "--to", NEXT)
    assert plan.returncode == 0, plan.stderr
    assert "conf/server.xml: merged: your changes and the release's" in plan.stdout
    assert "bin/setenv.sh: merged: your changes and the release's" in plan.stdout
    assert "the release's changes:" in plan.stdout and "your changes:" in plan.stdout
    as_json = confluo("plan", "-i", str(lab.inventory), "--to", NEXT, "--json")
    carried = [
        f for s in json.loads(as_json.stdout)["steps"] if s["step"] == "carry customizations" for f in s["files"]
    ]
    assert {part["title"] for f in carried for part in f["parts"]} >= {"your changes", "the release's changes"}

    log_file = tmp_path / "upgrade.log"
    result = confluo("upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes", "--json", "--log-file", str(log_file))
    assert result.returncode == 0, result.stdout + result.stderr

    for node in lab.status()["nodes"]:
        assert (node["state"], node["version"], node["problems"]) == ("ACTIVE", NEXT, [])
        install = Path(node["install_dir"]).resolve()
        server = (install / SERVER_XML).read_text()
        for admins in (f'address="{node["address"]}"', f'proxyName="{PROXY_NAME}"', 'maxThreads="100"'):
            assert admins in server
        for release in ('maxHttpHeaderSize="16384"', 'threshold="120"', 'shutdown="C0MP13X5HUTD0WN"'):
            assert release in server
        assert 'threshold="60"' not in server
        setenv = (install / "bin/setenv.sh").read_text()
        assert "-Xms2048m" in setenv and f"-Dconfluence.cluster.node.name={node['name']}" in setenv
        assert "-XX:+ExitOnOutOfMemoryError" in setenv
        classes = install / "confluence/WEB-INF/classes"
        assert '<authenticator class="com.atlassian.confluence.user.ConfluenceCrowdSSOAuthenticator"/>' in (
            classes / "seraph-config.xml"
        ).read_text().replace(
            '<!-- <authenticator class="com.atlassian.confluence.user.ConfluenceCrowdSSOAuthenticator"/> -->', ""
        )
        # The next upgrade's base: this release's stock file, kept pristine.
        stock = (install / ".confluo/stock" / SERVER_XML).read_text()
        assert 'maxHttpHeaderSize="16384"' in stock and "address=" not in stock.split("-->", 1)[1].split("<!--")[0]

    assert_no_secret_in(plan.stdout, plan.stderr, as_json.stdout, result.stdout, result.stderr,
                        *everything_confluo_wrote(log_file))  # fmt: skip
    assert "contents not logged" in log_file.read_text()


def test_a_conflicting_edit_is_refused_with_both_sides_and_upgrades_once_resolved(
    lab: LabHandle, tmp_path: Path
) -> None:
    server = install_of(lab, "node1") / SERVER_XML
    edited = server.read_text().replace('threshold="60"', 'threshold="90"', 1)  # the release makes it 120
    server.write_text(edited)

    refused = confluo("plan", "-i", str(lab.inventory), "--to", NEXT)
    assert refused.returncode == 3
    assert "node1: conf/server.xml: CONFLICT" in refused.stderr
    assert 'threshold="90"' in refused.stderr and 'threshold="120"' in refused.stderr
    assert "node2: conf/server.xml" not in refused.stderr, "node2 merges cleanly"
    assert_no_secret_in(refused.stdout, refused.stderr)

    # Resolved by hand for node1: its 90 s kept, the release's other changes taken.
    resolved = tmp_path / "resolved" / "node1" / "server.xml"
    resolved.parent.mkdir(parents=True)
    resolved.write_text(
        edited.replace('minSpareThreads="10"\n', 'minSpareThreads="10" maxHttpHeaderSize="16384"\n', 1).replace(
            'threshold="60"', 'threshold="120"'
        )
    )

    def resolve(document: dict[str, Any]) -> None:
        document["customizations"]["resolve"] = {SERVER_XML: str(tmp_path / "resolved" / "{node}" / "server.xml")}

    inventory = variant(lab, tmp_path, resolve)
    result = confluo("upgrade", "-i", str(inventory), "--to", NEXT, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (install_of(lab, "node1") / SERVER_XML).read_text() == resolved.read_text()
    assert 'threshold="120"' in (install_of(lab, "node2") / SERVER_XML).read_text()


def crlf_archive(source: Path, out: Path) -> Path:
    """The release archive with its confluence-init.properties shipped with CRLF line endings."""
    with tarfile.open(source, "r:gz") as old, gzip.open(out, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as new:
        for member in old:
            data = old.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name.endswith(INIT) and data is not None:
                data = data.replace(b"\n", b"\r\n")
                member.size = len(data)
            new.addfile(member, io.BytesIO(data) if data is not None else None)
    return out


def test_a_crlf_init_properties_gets_a_one_line_diff(shared_lab: LabHandle, tmp_path: Path) -> None:
    record = yaml.safe_load(shared_lab.inventory.read_text())
    archive = crlf_archive(Path(record["target"]["archive"]), tmp_path / f"atlassian-confluence-{NEXT}.tar.gz")

    def crlf(document: dict[str, Any]) -> None:
        document["target"].update(archive=str(archive), sha256=sha256_of(archive))

    plan = confluo("plan", "-i", str(variant(shared_lab, tmp_path, crlf)), "--to", NEXT, "--json")
    assert plan.returncode == 0, plan.stderr
    (diff,) = [
        change["diff"]
        for step in json.loads(plan.stdout)["steps"]
        if step["step"] == "set home" and step["node"] == "node1"
        for change in step["files"]
    ]
    body = [line for line in diff.splitlines() if not line.startswith(("+++", "---"))]
    changed = [line for line in body if line.startswith(("+", "-"))]
    assert changed == [f"+confluence.home={shared_lab.node('node1')['home']}"]
    assert f"+confluence.home={shared_lab.node('node1')['home']}\r\n" in diff, "written with the file's CRLF"


def test_an_inventory_home_that_is_not_the_one_the_node_runs_on_is_refused(
    shared_lab: LabHandle, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-home"
    empty.mkdir()

    def other_home(document: dict[str, Any]) -> None:
        document["nodes"][0]["home"] = str(empty)

    refused = confluo("plan", "-i", str(variant(shared_lab, tmp_path, other_home)), "--to", NEXT)
    assert refused.returncode == 3
    running = shared_lab.node("node1")["home"]
    assert f"node1: the running installation uses confluence.home={running}" in refused.stderr
    assert f"the inventory's home is {empty}" in refused.stderr
