"""A running lab as confluo and an administrator see it: nodes, API, load balancer, SSH, sudo, files.

These tests only read (or restore what they change), so they share one lab per module.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from labkit import LabHandle, start_lab, wait_until

from confluo.lab import balancer, hosts, lifecycle, model, tarball

pytestmark = pytest.mark.lab
requires_ssh = pytest.mark.skipif(not hosts.ssh_supported(), reason="ssh mode needs root and /usr/sbin/sshd")

NODE_FIELDS = {"id", "name", "ipAddress", "state", "tasksTotal", "activeUserCount", "buildNumber", "version", "local"}


@pytest.fixture(scope="module")
def shared_lab() -> Iterator[LabHandle]:
    with start_lab() as handle:
        yield handle


def zdu_cluster(lab: LabHandle, url: str) -> httpx.Response:
    _, user, password = lab.api
    return httpx.get(f"{url}/rest/zdu/cluster", auth=(user, password), timeout=5)


def test_every_node_is_active_and_the_status_has_the_documented_shape(shared_lab: LabHandle) -> None:
    status = shared_lab.status()
    documented = {"dir", "mode", "inventory", "next_version", "next_archive", "api", "lb", "cluster", "nodes"}
    assert set(status) == {*documented, "synchrony", "spare_hosts"}
    assert status["synchrony"] == [] and status["spare_hosts"] == []  # none without --synchrony / --spare-hosts
    assert status["mode"] == ("ssh" if hosts.ssh_supported() else "local")
    assert status["next_version"] == "9.2.14"
    assert Path(status["next_archive"]).is_file()
    assert status["cluster"] == {"state": "STABLE", "upgrade_mode": False, "version": "9.2.13", "index_journal": 0}
    assert status["lb"]["kind"] == "haproxy"
    assert [n["name"] for n in status["nodes"]] == ["node1", "node2", "node3"]
    for index, node in enumerate(status["nodes"], start=1):
        slot = shared_lab.record.slot
        assert node["address"] == f"127.0.{slot}.{10 + index}"
        assert (node["state"], node["status"], node["version"], node["problems"]) == ("ACTIVE", "RUNNING", "9.2.13", [])
        assert Path(node["install_dir"]).name == "current" and node["index_position"] == 0
        assert hosts.runs(node["pid"], "confluence-node.pyz")


def test_a_request_through_haproxy_is_answered_and_sticks_to_its_node(shared_lab: LabHandle) -> None:
    with httpx.Client(base_url=shared_lab.lb_url, timeout=5) as client:
        first = client.get("/")
        assert first.status_code == 200
        node = first.headers["x-confluence-node"]
        assert first.cookies["JSESSIONID"].startswith(f"{node}~")  # HAProxy's cookie prefix
        assert {client.get("/").headers["x-confluence-node"] for _ in range(6)} == {node}
    spread = {httpx.get(f"{shared_lab.lb_url}/", timeout=5).headers["x-confluence-node"] for _ in range(6)}
    assert spread == {"node1", "node2", "node3"}  # without the cookie: round robin


def test_haproxy_reports_every_server_up_on_its_admin_socket(shared_lab: LabHandle) -> None:
    socket_path = Path(shared_lab.status()["lb"]["socket"])
    wait_until(
        lambda: set(balancer.haproxy_server_states(socket_path).values()) == {"UP"},
        5,
        "every server UP",
        lambda: balancer.haproxy_server_states(socket_path),
    )
    assert set(balancer.haproxy_server_states(socket_path)) == {"node1", "node2", "node3"}


def test_the_zdu_cluster_on_any_node_lists_every_node_with_the_documented_fields(shared_lab: LabHandle) -> None:
    for node in shared_lab.status()["nodes"]:
        response = zdu_cluster(shared_lab, node["url"])
        assert response.status_code == 200
        body = response.json()
        assert body["upgradeModeEnabled"] is False
        assert body["state"] == "STABLE"
        listed = body["nodes"]
        assert [n["name"] for n in listed] == ["node1", "node2", "node3"]
        for entry in listed:
            assert set(entry) >= NODE_FIELDS
            assert entry["state"] == "ACTIVE"
            assert entry["version"] == "9.2.13"
            assert entry["local"] is (entry["name"] == node["name"])


def test_the_zdu_api_wants_the_admin(shared_lab: LabHandle) -> None:
    url = shared_lab.status()["nodes"][0]["url"]
    assert httpx.get(f"{url}/rest/zdu/cluster", timeout=5).status_code == 401
    assert httpx.get(f"{url}/rest/zdu/cluster", auth=("admin", "wrong"), timeout=5).status_code == 401


@requires_ssh
def test_ssh_reaches_every_node_as_its_login_user_with_strict_host_keys(shared_lab: LabHandle) -> None:
    for node in shared_lab.status()["nodes"]:
        done = shared_lab.ssh(node["name"], "id -un; hostname -I 2>/dev/null; echo $SSH_CONNECTION")
        assert done.returncode == 0, done.stderr
        user, *_ = done.stdout.split()
        assert user == node["ssh"]["user"] != "root"
        assert f" {node['address']} 22" in done.stdout  # the connection ended on the node's own sshd


@requires_ssh
def test_ssh_refuses_a_host_key_not_in_known_hosts(shared_lab: LabHandle, tmp_path: Path) -> None:
    record = shared_lab.record
    wrong = tmp_path / "known_hosts"
    wrong.write_text(record.known_hosts.read_text().replace(record.nodes[0].address, "127.9.9.9"))
    argv = shared_lab.ssh_argv("node1", "true")
    argv[argv.index(f"UserKnownHostsFile={record.known_hosts}")] = f"UserKnownHostsFile={wrong}"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 255
    assert "Host key verification failed" in done.stderr


@requires_ssh
def test_sudo_allows_the_upgrade_commands_and_refuses_the_rest(shared_lab: LabHandle) -> None:
    scratch = shared_lab.dir / "hosts" / "node1" / "opt" / "sudo-check"
    allowed = shared_lab.ssh("node1", f"sudo -n /usr/bin/mkdir -p {scratch}")
    assert allowed.returncode == 0, allowed.stderr
    assert scratch.is_dir() and scratch.stat().st_uid == 0  # created as root
    refusals = (
        "/usr/bin/id",
        "/bin/sh -c true",
        "/usr/bin/vi /etc/passwd",
        "/usr/bin/chmod 777 /tmp",
        "/usr/bin/cat /etc/shadow",
        f"/usr/bin/test -d {scratch}",
    )  # none of the README's commands
    for command in refusals:
        refused = shared_lab.ssh("node1", f"sudo -n {command}")
        assert refused.returncode != 0, command
        assert "a password is required" in refused.stderr
    cleaned = shared_lab.ssh("node1", f"sudo -n /usr/bin/rm -rf {scratch}")
    assert cleaned.returncode == 0


@requires_ssh
def test_files_are_owned_like_a_production_node(shared_lab: LabHandle) -> None:
    record = shared_lab.record
    node = record.nodes[0]
    install = node.current.resolve()
    user, group = node.user, record.group
    assert _owner(node.install_base) == ("root", "root")
    assert _owner(install) == ("root", "root")
    assert _owner(install / "conf" / "server.xml") == ("root", "root")
    for writable in ("logs", "work", "temp"):
        assert _owner(install / writable) == (user, group)
    assert _owner(node.home) == (user, group)
    assert _owner(node.home / "confluence.cfg.xml") == (user, group)
    for shared in (record.db_file.parent, record.shared_home):
        assert _owner(shared)[1] == group
        assert stat.S_IMODE(shared.stat().st_mode) == 0o2770
    for secret in (model.lab_json(record.dir), record.password_file):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    done = shared_lab.ssh("node1", f"touch {install}/bin/x")
    assert done.returncode != 0  # the installation is not the login user's to change


def _owner(path: Path) -> tuple[str, str]:
    return path.owner(), path.group()


def test_the_inventory_describes_the_lab_and_confluo_accepts_it(shared_lab: LabHandle) -> None:
    from confluo.inventory import load_inventory

    record = shared_lab.record
    document = yaml.safe_load(shared_lab.inventory.read_text())
    assert document["cluster"]["api_url"] == record.api_url == f"http://127.0.{record.slot}.10:8080"
    assert document["cluster"]["credentials"] == {"username": "admin", "password_file": str(record.password_file)}
    assert record.password_file.read_text().strip() == record.admin_password
    assert document["target"]["version"] == "9.2.14"
    assert document["target"]["sha256"] == tarball.sha256_of(record.next_archive)
    assert document["database"] == "mysql"
    assert document["keep_releases"] == 3
    assert document["defaults"]["service"] == {"kind": "script"}
    for entry, node in zip(document["nodes"], record.nodes, strict=True):
        assert entry["host"] == node.address
        assert entry["url"] == f"http://{node.address}:8090"
        assert entry["install"] == {"layout": "symlink", "base": str(node.install_base)}
        assert entry["home"] == str(node.home)
        if record.ssh:
            assert entry["ssh"] == {"user": node.user}
            assert entry["run_as"] == node.user
    if record.ssh:
        assert document["defaults"]["ssh"] == {
            "port": 22,
            "key": str(record.client_key),
            "known_hosts": str(record.known_hosts),
        }
        assert document["defaults"]["sudo"] is True
    inventory = load_inventory(shared_lab.inventory)
    assert [n.name for n in inventory.nodes] == ["node1", "node2", "node3"]


def test_lab_set_changes_tasks_and_users_in_the_api(shared_lab: LabHandle) -> None:
    url = shared_lab.status()["nodes"][2]["url"]
    shared_lab.set("node2", tasks=4, users=17)
    try:

        def node2() -> dict[str, object]:
            return next(n for n in zdu_cluster(shared_lab, url).json()["nodes"] if n["name"] == "node2")

        wait_until(lambda: (node2()["tasksTotal"], node2()["activeUserCount"]) == (4, 17), 5, "node2's load", node2)
        shared_lab.set("node2", users=3)  # one value at a time leaves the other as it was
        wait_until(lambda: (node2()["tasksTotal"], node2()["activeUserCount"]) == (4, 3), 5, "node2's users", node2)
    finally:
        shared_lab.set("node2", tasks=0, users=0)


def test_the_cli_prints_status_as_json_and_as_a_table(shared_lab: LabHandle) -> None:
    as_json = confluo("lab", "status", "--dir", str(shared_lab.dir), "--json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["dir"] == str(shared_lab.dir)
    assert [n["state"] for n in document["nodes"]] == ["ACTIVE"] * 3
    table = confluo("lab", "status", "--dir", str(shared_lab.dir))
    assert table.returncode == 0
    assert "STABLE" in table.stdout
    assert table.stdout.count("ACTIVE") == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["fault", "node9", "crash"], "no node 'node9'"),
        (["fault", "node1", "meteor"], "unknown fault kind 'meteor'"),
        (["set", "node9", "--tasks", "1"], "no node 'node9'"),
    ],
)
def test_the_cli_rejects_bad_input_with_a_clear_message(
    shared_lab: LabHandle, arguments: list[str], message: str
) -> None:
    done = confluo("lab", *arguments, "--dir", str(shared_lab.dir))
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "command", [["status"], ["down"], ["fault", "node1", "crash"], ["set", "node1", "--users", "1"]]
)
def test_the_cli_says_when_there_is_no_lab(tmp_path: Path, command: list[str]) -> None:
    done = confluo("lab", *command, "--dir", str(tmp_path / "nothing"))
    assert done.returncode == 1
    assert "no lab in" in done.stderr


def test_up_refuses_a_dir_where_a_lab_runs(shared_lab: LabHandle) -> None:
    with pytest.raises(hosts.LabError, match="already runs"):
        lifecycle.up(shared_lab.dir, model.LabOptions())
    assert shared_lab.status()["cluster"]["state"] == "STABLE"


def confluo(*arguments: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(["confluo", *arguments], capture_output=True, text=True, timeout=60, env=env)
