"""`confluo add-node` against a lab: a 2-node lab with a spare host grows to 3 nodes while node1, the donor, serves
through HAProxy the whole time; the new node has its own identity, and the inventory gains it with its comments."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from labkit import LabHandle, wait_until
from test_upgrade import Traffic, confluo

from confluo.lab import balancer

pytestmark = pytest.mark.lab

COMMENT = "# the admin's own comment, which confluo must keep\n"


def add_node_args(lab: LabHandle, spare: dict[str, Any], *extra: str) -> list[str]:
    return [
        "add-node", "-i", str(lab.inventory), "node3", "--from", "node1", "--host", spare["address"],
        "--ssh-user", spare["ssh"]["user"], "--run-as", spare["ssh"]["user"],
        "--install-base", spare["install_base"], "--home", spare["home"], *extra,
    ]  # fmt: skip


def cluster_nodes(lab: LabHandle) -> dict[str, dict[str, Any]]:
    return {node["name"]: node for node in lab.status()["nodes"]}


def test_add_node_grows_a_2_node_lab_to_3_while_the_donor_serves(lab_factory: Any) -> None:
    lab: LabHandle = lab_factory(nodes=2, spare_hosts=1)
    spare = lab.status()["spare_hosts"][0]
    assert spare["sshd"] == "up" and not spare["installed"]
    lab.inventory.write_text(COMMENT + lab.inventory.read_text())
    before = lab.inventory.read_text()
    donor_home = Path(lab.node("node1")["home"])
    donor_files = {p.name: p.stat().st_mtime_ns for p in donor_home.iterdir()}

    dry = confluo(*add_node_args(lab, spare, "--dry-run"))
    assert dry.returncode == 0, dry.stderr
    assert "copy installation" in dry.stdout and "sudo -n /usr/bin/tar -cf -" in dry.stdout
    assert "-Dconfluence.cluster.node.name=node3" in dry.stdout and "the database must allow 60 more" in dry.stdout
    assert lab.inventory.read_text() == before and not Path(spare["install_base"]).exists()

    with Traffic(lab.lb_url) as traffic:
        result = confluo(*add_node_args(lab, spare, "--yes", "--json"))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"event": "inventory_written"}.items() <= events[-1].items()
    assert traffic.ok > 10 and traffic.failed == 0, traffic.errors
    # The lab's HAProxy has node3's server ahead of it, out of the pool: confluo puts it in once it is ACTIVE.
    steps_done = [e["step"] for e in events if e["event"] == "phase_done" and e.get("node") == "node3"]
    assert steps_done[-2:] == ["join", "ready"], steps_done

    nodes = cluster_nodes(lab)
    assert sorted(nodes) == ["node1", "node2", "node3"]
    assert {name: (n["state"], n["version"]) for name, n in nodes.items()} == {
        name: ("ACTIVE", "9.2.13") for name in nodes
    }
    assert len({n["id"] for n in nodes.values()}) == 3, "node3 has a node id of its own"
    assert nodes["node3"]["address"] == spare["address"]
    cfg = (Path(spare["home"]) / "confluence.cfg.xml").read_text()
    assert nodes["node1"]["id"] not in cfg and spare["address"] in re.search(r"peers\">([^<]*)", cfg)[1]  # type: ignore[index]
    assert {p.name: p.stat().st_mtime_ns for p in donor_home.iterdir() if p.name in donor_files} == donor_files

    after = lab.inventory.read_text()
    assert after.startswith(before) and after.startswith(COMMENT) and "name: node3" in after[len(before) :]
    planned = confluo("plan", "-i", str(lab.inventory))
    assert planned.returncode == 0 and "3 nodes" in planned.stdout, planned.stderr
    verified = confluo("verify", "-i", str(lab.inventory))  # the seeds' cluster test, node3 included
    assert verified.returncode == 0 and "node3" in verified.stdout, verified.stdout + verified.stderr

    again = confluo(*add_node_args(lab, spare, "--yes"))
    assert again.returncode == 3 and "the cluster already has a node of that name" in again.stderr


def served_by(url: str, cookie: str | None = None) -> str:
    request = urllib.request.Request(url + "/", headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.headers["X-Confluence-Node"])


def grown_by_confluo(lab: LabHandle, spare: dict[str, Any], config: Path, planned: str) -> list[str]:
    """node3 added where the load balancer has no server for it: the dry run shows `planned` and leaves `config`
    alone; the real run, under traffic, adds the server and puts it in once node3 is ACTIVE. The lines it added."""
    before = config.read_text()
    dry = confluo(*add_node_args(lab, spare, "--dry-run"))
    assert dry.returncode == 0, dry.stderr
    assert planned in dry.stdout and config.read_text() == before
    with Traffic(lab.lb_url) as traffic:
        result = confluo(*add_node_args(lab, spare, "--yes", "--json"))
    assert result.returncode == 0, result.stderr
    assert traffic.ok > 10 and traffic.failed == 0, traffic.errors
    events = [json.loads(line) for line in result.stdout.splitlines()]
    steps_done = [e["step"] for e in events if e["event"] == "phase_done" and e.get("node") == "node3"]
    assert steps_done[-3:] == ["join", "add_server", "ready"], steps_done
    return [line for line in config.read_text().splitlines() if line not in before.splitlines()]


def test_with_nginx_the_new_node_gets_a_server_line_like_the_donors_and_takes_requests(lab_factory: Any) -> None:
    """An administrator who did not add the server ahead: confluo writes it into the upstream file, out of the
    pool, and puts it in once the node is ACTIVE; nginx keeps serving throughout."""
    lab: LabHandle = lab_factory(nodes=2, spare_hosts=1, lb="nginx")
    spare = lab.status()["spare_hosts"][0]
    section = yaml.safe_load(lab.inventory.read_text())["load_balancer"]
    upstream = Path(section["upstream_file"])
    upstream.write_text("".join(line for line in upstream.read_text().splitlines(True) if "# node3" not in line))
    subprocess.run(shlex.split(section["reload_command"]), check=True)
    time.sleep(0.5)  # the old workers finish; requests then meet only the file above
    before = upstream.read_text()

    added = grown_by_confluo(lab, spare, upstream, f"add `server {spare['address']}:8090 … down;`")
    donor_line = next(line for line in before.splitlines() if "# node1" in line)
    expected = donor_line.split("#")[0].rstrip().replace(lab.node("node1")["address"], spare["address"])
    assert added == [expected.removesuffix(";") + ";  # node3, added by confluo add-node"], added
    # nginx hashes the session cookie: fresh clients spread over every node
    assert {served_by(lab.lb_url) for _ in range(40)} == {"node1", "node2", "node3"}


def test_with_haproxy_the_new_node_gets_a_server_line_like_the_donors_and_keeps_its_sessions(lab_factory: Any) -> None:
    """An administrator who did not add the server ahead: confluo writes it into haproxy.cfg (its own cookie),
    reloads HAProxy with the new server out of the pool, and puts it in once the node is ACTIVE; HAProxy keeps
    serving throughout, and sessions stick to the new node."""
    lab: LabHandle = lab_factory(nodes=2, spare_hosts=1)
    spare = lab.status()["spare_hosts"][0]
    section = yaml.safe_load(lab.inventory.read_text())["load_balancer"]
    config, socket = Path(section["config"]), Path(section["socket"])
    config.write_text("".join(line for line in config.read_text().splitlines(True) if "server node3 " not in line))
    subprocess.run([section["reload_command"]], check=True)
    wait_until(lambda: "node3" not in balancer.haproxy_server_states(socket), 10, "HAProxy without node3")
    balancer.set_haproxy_server_state(socket, "node2", "drain")  # an administrator's drain, kept across the reload
    before = config.read_text()

    added = grown_by_confluo(lab, spare, config, f"add `server node3 {spare['address']}:8090 …`")
    donor_line = next(line for line in before.splitlines() if "server node1 " in line)
    expected = donor_line.replace("node1", "node3").replace(lab.node("node1")["address"], spare["address"])
    assert added == [expected + "  # node3, added by confluo add-node"], added
    states = balancer.haproxy_server_states(socket)
    assert (states["node3"], states["node2"]) == ("UP", "DRAIN"), states
    assert {served_by(lab.lb_url, "JSESSIONID=node3~A1B2") for _ in range(10)} == {"node3"}, "sticky to node3"

    assert lab.record.balancer is not None
    balancer.save_haproxy_state(lab.record.balancer)  # the administrator's next reload, done as it should be
    subprocess.run([section["reload_command"]], check=True)
    wait_until(lambda: balancer.haproxy_server_states(socket).get("node3") == "UP", 10, "node3 UP after a reload")
