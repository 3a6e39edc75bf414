"""`confluo plan` and `confluo upgrade` against a lab cluster: real sshd per node, real HAProxy, node programs
started from a real archive. Every test runs the real command line in a subprocess (no terminal), as cron would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from labkit import NEXT, LabHandle, start_lab, wait_until
from labruns import Traffic, confluo, confluo_env, kept, quick, snapshot, upgrade_watching, variant

from confluo.lab.tarball import build_archive, sha256_of

pytestmark = pytest.mark.lab


# -- the whole upgrade -------------------------------------------------------------------------------------


def test_upgrade_moves_every_node_to_a_new_installation_without_downtime(lab: LabHandle, tmp_path: Path) -> None:
    before = lab.status()
    old_installs = {node["name"]: Path(node["install_dir"]).resolve() for node in before["nodes"]}
    # node3 is the least busy, then node1, then node2: the upgrade must take them in that order.
    lab.set("node1", tasks=2, users=1)
    lab.set("node2", tasks=3, users=5)
    log_file = tmp_path / "upgrade.log"
    with Traffic(lab.lb_url) as traffic:
        result = confluo(
            "upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes", "--json", "--log-file", str(log_file)
        )
    assert result.returncode == 0, result.stderr

    after = lab.status()
    assert after["cluster"]["state"] == "STABLE"
    assert after["cluster"]["upgrade_mode"] is False
    for node in after["nodes"]:
        assert (node["state"], node["status"], node["version"], node["problems"]) == ("ACTIVE", "RUNNING", NEXT, [])
        install = Path(node["install_dir"]).resolve()
        assert install.name == NEXT and install != old_installs[node["name"]]
        assert old_installs[node["name"]].is_dir(), "the old installation is kept for rollback"
        assert list((install / "confluence/WEB-INF/lib").glob("mysql-connector-*.jar"))
        init = (install / "confluence/WEB-INF/classes/confluence-init.properties").read_text()
        assert f"confluence.home={node['home']}" in init.splitlines()
        assert init.lstrip().startswith("#"), "the stock comments are kept"
        assert f'address="{node["address"]}"' in (install / "conf/server.xml").read_text()
        assert f"-Dconfluence.cluster.node.name={node['name']}" in (install / "bin/setenv.sh").read_text()
        assert Path(node["home"], "confluence.cfg.xml").is_file()

    events = [json.loads(line) for line in result.stdout.splitlines()]
    order = [event["node"] for event in events if event["event"] == "node_started"]
    assert order == ["node3", "node1", "node2"]
    assert events[-1]["event"] == "summary"
    assert traffic.ok > 50 and traffic.failed == 0, traffic.errors

    password = lab.api[2]
    assert password not in log_file.read_text() + result.stdout + result.stderr
    assert "sudo -n /usr/bin/tar" in log_file.read_text()

    again = confluo("upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes")
    assert again.returncode == 0
    assert "nothing to do" in again.stdout


def test_plan_probes_for_real_and_changes_nothing(lab: LabHandle) -> None:
    before = snapshot(lab)
    result = confluo("plan", "-i", str(lab.inventory), "--to", NEXT)
    assert result.returncode == 0, result.stderr
    assert snapshot(lab) == before
    node1 = lab.node("node1")
    assert "Plan: confluo-lab-" in result.stdout and "9.2.13 -> 9.2.14, cluster STABLE" in result.stdout
    assert "  node1: 0 tasks, 0 users; " in result.stdout
    assert f"+confluence.home={node1['home']}" in result.stdout
    assert f'+        <Connector address="{node1["address"]}"' in result.stdout
    assert "sudo -n /usr/bin/mv -T" in result.stdout

    # A server.xml holding a keystore password may be unreadable to the login user: it cannot be merged, so the
    # plan refuses and says how to go on, unless the inventory says to copy it whole (as root, unseen).
    (Path(node1["install_dir"]).resolve() / "conf/server.xml").chmod(0o600)
    unreadable = confluo("plan", "-i", str(lab.inventory), "--to", NEXT)
    assert unreadable.returncode == 3
    assert "node1: conf/server.xml: the login user cannot read it, so it cannot be merged" in unreadable.stderr
    document = yaml.safe_load(lab.inventory.read_text())
    document["customizations"]["resolve"] = {"conf/server.xml": "keep-mine"}
    kept = lab.inventory.with_name("keep-mine.yaml")
    kept.write_text(yaml.safe_dump(document))
    copied = confluo("plan", "-i", str(kept), "--to", NEXT)
    assert copied.returncode == 0, copied.stderr
    assert "resolved in the inventory: yours kept whole" in copied.stdout
    assert "sudo -n /usr/bin/cp -p -- " + str(Path(node1["install_dir"]).resolve() / "conf/server.xml") in copied.stdout
    (Path(node1["install_dir"]).resolve() / "conf/server.xml").chmod(0o644)

    as_json = json.loads(confluo("plan", "-i", str(lab.inventory), "--json").stdout)
    assert as_json["target_version"] == NEXT
    assert [n["installed_version"] for n in as_json["nodes"]] == ["9.2.13"] * 3


def test_upgrade_without_yes_and_without_a_terminal_changes_nothing(lab: LabHandle) -> None:
    before = snapshot(lab)
    result = confluo("upgrade", "-i", str(lab.inventory), "--to", NEXT)
    assert result.returncode == 4
    assert "--yes" in result.stderr
    assert snapshot(lab) == before


# -- refusals: every reason at once, exit 3, nothing touched ---------------------------------------------------


@pytest.fixture(scope="module")
def shared_lab() -> Iterator[LabHandle]:
    with start_lab() as handle:
        yield handle


def refused(lab: LabHandle, inventory: Path, *extra: str) -> str:
    before = snapshot(lab)
    result = confluo("upgrade", "-i", str(inventory), "--yes", *extra)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "nothing was changed" in result.stderr
    assert snapshot(lab) == before
    return result.stderr


def test_refuses_an_unreachable_node(shared_lab: LabHandle) -> None:
    shared_lab.fault("node2", "ssh-down")
    try:
        message = refused(shared_lab, shared_lab.inventory)
    finally:
        shared_lab.fault("node2", "clear")
    assert "node2: unreachable" in message


def test_refuses_a_version_step_a_rolling_upgrade_does_not_allow(shared_lab: LabHandle) -> None:
    message = refused(shared_lab, shared_lab.inventory, "--to", "10.0.0")
    assert "9.2.13 -> 10.0.0" in message


def test_refuses_a_cluster_that_is_not_stable(shared_lab: LabHandle) -> None:
    url, user, password = shared_lab.api
    headers = {"X-Atlassian-Token": "no-check", "Content-Type": "application/json"}
    assert httpx.post(url + "/rest/zdu/start", auth=(user, password), headers=headers).status_code == 200
    try:
        message = refused(shared_lab, shared_lab.inventory)
    finally:
        httpx.post(url + "/rest/zdu/cancel", auth=(user, password), headers=headers)
    assert "the cluster is READY_TO_UPGRADE (upgrade mode is on), not STABLE" in message


def test_refuses_while_a_node_is_in_error(shared_lab: LabHandle) -> None:
    shared_lab.fault("node3", "fail-start")
    shared_lab.stop_node("node3")
    shared_lab.wait_for_state("node3", "OFFLINE")
    shared_lab.start_node("node3")
    try:
        shared_lab.wait_for_state("node3", "ERROR")
        message = refused(shared_lab, shared_lab.inventory)
    finally:
        shared_lab.fault("node3", "clear")
        shared_lab.stop_node("node3")
        shared_lab.wait_for_state("node3", "OFFLINE")
        shared_lab.start_node("node3")
        shared_lab.wait_for_state("node3", "ACTIVE")
    assert "node3" in message and "ERROR" in message


def test_refuses_when_inventory_and_cluster_list_different_nodes(shared_lab: LabHandle, tmp_path: Path) -> None:
    inventory = variant(shared_lab, tmp_path, lambda doc: doc["nodes"].pop())
    message = refused(shared_lab, inventory)
    assert "the cluster has a node node3 (127.0." in message and "that the inventory does not list" in message


def test_refuses_too_little_disk_and_a_checksum_mismatch_together(shared_lab: LabHandle, tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["defaults"]["min_free_disk_mb"] = 10**9
        doc["target"]["sha256"] = "0" * 64

    message = refused(shared_lab, variant(shared_lab, tmp_path, change))
    for name in ("node1", "node2", "node3"):
        assert f"{name}: only" in message and "MB needed (min_free_disk_mb)" in message, message
    assert "sha256 is" in message and "the inventory says " + "0" * 64 in message


def test_refuses_fewer_than_two_nodes(shared_lab: LabHandle, tmp_path: Path) -> None:
    inventory = variant(shared_lab, tmp_path, lambda doc: doc.update(nodes=doc["nodes"][:1]))
    message = refused(shared_lab, inventory)
    assert "needs at least 2" in message


def test_refuses_an_unknown_host_key_unless_told_to_accept_it(shared_lab: LabHandle, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inventory = variant(shared_lab, tmp_path, lambda doc: doc["defaults"]["ssh"].update(known_hosts=str(empty)))
    message = refused(shared_lab, inventory)
    assert "not in" in message and "--accept-new-host-keys" in message

    result = confluo("plan", "-i", str(inventory), "--accept-new-host-keys")
    assert result.returncode == 0, result.stderr
    assert len(empty.read_text().splitlines()) == 3


def test_refuses_an_inventory_whose_hosts_are_swapped(shared_lab: LabHandle, tmp_path: Path) -> None:
    """node1's entry reaches node2's machine and the other way round: confluo would stop one machine while it
    watched another in the cluster API. Refused before anything changes, naming both."""

    def swap(doc: dict[str, Any]) -> None:
        first, second = doc["nodes"][0], doc["nodes"][1]
        for key in ("host", "ssh", "run_as", "install", "home"):
            first[key], second[key] = second[key], first[key]

    message = refused(shared_lab, variant(shared_lab, tmp_path, swap))
    node1, node2 = shared_lab.node("node1"), shared_lab.node("node2")
    assert f"node1: {node2['address']} is configured as another cluster node (bin/setenv.sh names it 'node2'" in message
    assert f"node2: {node1['address']} is configured as another cluster node (bin/setenv.sh names it 'node1'" in message
    assert f"the id of 'node2'; conf/server.xml binds it to {node2['address']}, the address of 'node2')" in message
    assert f"the cluster knows node1 as 'node1' (id {node1['id']!r}) at {node1['address']}" in message


def test_refuses_a_changed_host_key(shared_lab: LabHandle, tmp_path: Path) -> None:
    real = shared_lab.record.known_hosts.read_text().splitlines()
    # Every node presented with another node's key: what a man in the middle would look like.
    swapped = [f"{line.split()[0]} {' '.join(real[(i + 1) % len(real)].split()[1:])}" for i, line in enumerate(real)]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("\n".join(swapped) + "\n")
    inventory = variant(shared_lab, tmp_path, lambda doc: doc["defaults"]["ssh"].update(known_hosts=str(known_hosts)))
    message = refused(shared_lab, inventory, "--accept-new-host-keys")
    assert "does NOT match" in message


def test_invalid_inventory_is_reported_with_locations_before_any_host_is_touched(
    shared_lab: LabHandle, tmp_path: Path
) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["nodes"][1]["ssh"]["port"] = "abc"
        doc["nodes"][2]["colour"] = "blue"

    before = snapshot(shared_lab)
    result = confluo("upgrade", "-i", str(variant(shared_lab, tmp_path, change)), "--yes")
    assert result.returncode == 2
    assert "nodes[1].ssh.port" in result.stderr and "nodes[2].colour" in result.stderr
    assert snapshot(shared_lab) == before


# -- what goes wrong mid-upgrade ---------------------------------------------------------------------------------


def test_a_node_that_will_not_start_is_rolled_back_and_the_cluster_is_stable_on_the_old_version(
    lab: LabHandle,
) -> None:
    """The new release ends in ERROR on node1 (the fault is cleared once confluo begins to roll back, as only the
    new release fails): node1 goes back to 9.2.13, upgrade mode is turned off, exit 6, nothing lost."""
    lab.set("node2", tasks=9)
    lab.set("node3", tasks=9)
    lab.fault("node1", "fail-start")
    old = {node["name"]: Path(node["install_dir"]).resolve() for node in lab.status()["nodes"]}

    def new_release_only(event: dict[str, Any], _: object) -> None:
        if event["event"] == "rollback_started":
            lab.fault("node1", "clear")

    run = upgrade_watching(lab.inventory, new_release_only)
    assert run.exit_code == 6, run.stderr
    assert "node1" in run.stderr and "ERROR" in run.stderr and "hint:" in run.stderr
    assert "node1 is ACTIVE on 9.2.13 again; upgrade mode is off" in run.stderr
    status = lab.status()
    for node in status["nodes"]:
        assert Path(node["install_dir"]).resolve() == old[node["name"]] and old[node["name"]].is_dir()
        assert Path(node["home"], "confluence.cfg.xml").is_file()
    assert [(n["state"], n["version"]) for n in status["nodes"]] == [("ACTIVE", "9.2.13")] * 3
    url, user, password = lab.api
    cluster = httpx.get(url + "/rest/zdu/cluster", auth=(user, password), timeout=10).json()
    assert (cluster["state"], cluster["upgradeModeEnabled"]) == ("STABLE", False)


def gone(pid: int) -> bool:
    """No such process, or a zombie (dead, waiting for its reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_a_node_active_on_the_new_release_but_serving_no_page_goes_back_before_it_takes_users(
    lab: LabHandle, tmp_path: Path
) -> None:
    """node1's new release is RUNNING and ACTIVE but answers 500 to every page read (an app broken by the
    upgrade): /status and the cluster say all is well, the page check does not. node1 is never put back in
    HAProxy's pool on it; it goes back to 9.2.13 and the cluster is STABLE there, no request failed."""
    lab.set("node2", tasks=9)
    lab.set("node3", tasks=9)
    inventory = quick(lab, tmp_path / "short", page_view_seconds=3)
    readied_on: list[str] = []

    def react(event: dict[str, Any], _: object) -> None:
        if event["event"] == "phase_done" and event.get("node") == "node1" and event.get("phase") == "stop":
            lab.fault("node1", "pages-broken")  # what it starts next, the new release, is broken
        if event["event"] == "rollback_started":
            lab.fault("node1", "clear")  # only the new release is broken
        if event["event"] == "phase_done" and event.get("node") == "node1" and event.get("step") == "ready":
            readied_on.append(lab.node("node1")["version"])

    with Traffic(lab.lb_url) as traffic:
        run = upgrade_watching(inventory, react)
    assert run.exit_code == 6, run.stderr
    assert "node1: ACTIVE on 9.2.14, but no page can be viewed on its own URL for 3 s (HTTP 500)" in run.stderr
    assert "node1 is ACTIVE on 9.2.13 again; upgrade mode is off" in run.stderr
    assert readied_on == ["9.2.13"], readied_on  # in the pool only once back on the release that serves pages
    assert [(n["state"], n["version"]) for n in lab.status()["nodes"]] == [("ACTIVE", "9.2.13")] * 3
    assert traffic.ok > 0 and traffic.failed == 0, traffic.errors


def test_a_hung_shutdown_is_ended_by_sigkill_and_the_node_upgraded(lab: LabHandle, tmp_path: Path) -> None:
    """node1 ignores SIGTERM (the lab's hang-stop): at stop_seconds confluo sends SIGTERM again, then SIGKILL,
    waits until the cluster sees it OFFLINE, and the upgrade goes on to the end."""
    lab.set("node2", tasks=9)
    lab.set("node3", tasks=9)
    lab.fault("node1", "hang-stop")
    hung_pid = int((Path(lab.node("node1")["install_dir"]) / "work/catalina.pid").read_text())
    old = {node["name"]: Path(node["install_dir"]).resolve() for node in lab.status()["nodes"]}
    paths_before, old_files = kept(lab, old)

    def timeouts(doc: dict[str, Any]) -> None:
        doc["defaults"]["timeouts"].update(stop_seconds=2, kill_grace_seconds=2)

    with Traffic(lab.lb_url) as traffic:
        run = upgrade_watching(variant(lab, tmp_path, timeouts), lambda event, process: None)
    assert run.exit_code == 0, run.stderr
    said = [event["message"] for event in run.events if event.get("node") == "node1"]
    sigterm = said.index("graceful stop timed out; SIGTERM again")
    assert said.index(f"SIGKILL pid {hung_pid}") > sigterm
    assert gone(hung_pid)
    assert run.nodes_started()[0] == "node1"

    status = lab.status()
    assert (status["cluster"]["state"], status["cluster"]["upgrade_mode"]) == ("STABLE", False)
    for node in status["nodes"]:
        assert (node["state"], node["status"], node["version"]) == ("ACTIVE", "RUNNING", NEXT)
        assert Path(node["install_dir"]).resolve().name == NEXT
    paths_after, old_files_after = kept(lab, old)
    assert paths_before <= paths_after, "nothing in the homes is lost"
    assert old_files_after == old_files, "the old installations are untouched"
    assert traffic.ok > 0 and traffic.failed == 0, traffic.errors


def test_shared_home_transfer_sends_the_archive_once(lab: LabHandle, tmp_path: Path) -> None:
    shared = lab.dir / "shared"

    def change(doc: dict[str, Any]) -> None:
        doc["target"].update(transfer="shared-home", shared_home=str(shared))

    inventory = variant(lab, tmp_path, change)
    result = confluo("upgrade", "-i", str(inventory), "--to", NEXT, "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    archive = lab.dir / f"atlassian-confluence-{NEXT}.tar.gz"
    assert summary["bytes_sent"] == archive.stat().st_size
    assert (shared / "confluo" / archive.name).read_bytes() == archive.read_bytes()
    assert [(n["state"], n["version"]) for n in lab.status()["nodes"]] == [("ACTIVE", NEXT)] * 3


def test_an_upgrade_killed_while_it_prestages_sends_only_the_rest_when_run_again(
    lab: LabHandle, tmp_path: Path
) -> None:
    """SIGKILL of confluo while a large archive streams to the nodes leaves `.part` files; the same upgrade again
    continues each from where it stopped (sends only the rest) and completes."""
    archive = build_archive(NEXT, tmp_path / "big", size_mb=160)
    size = archive.stat().st_size
    inventory = variant(
        lab, tmp_path, lambda doc: doc["target"].update(archive=str(archive), sha256=sha256_of(archive))
    )
    users = {node.name: str(node.user) for node in lab.record.nodes}
    staged = {name: Path("/home", user, ".cache/confluo", name, archive.name) for name, user in users.items()}
    part = {name: Path(f"{path}.part") for name, path in staged.items()}

    def held(name: str) -> int:
        try:
            return part[name].stat().st_size
        except FileNotFoundError:  # not begun, or complete and renamed
            return 0

    first = subprocess.Popen(
        [sys.executable, "-m", "confluo", "upgrade", "-i", str(inventory), "--to", NEXT, "--yes", "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=confluo_env(),
    )  # fmt: skip
    try:
        wait_until(lambda: any(held(name) >= size // 4 for name in users), 120, "a quarter of the archive sent")
    finally:
        first.kill()
        first.wait(30)

    def receiving() -> bool:  # the nodes' `cat` still writes what had arrived when the connection broke
        return any(
            subprocess.run(["pgrep", "-u", user, "-x", "cat"], capture_output=True, check=False).returncode == 0
            for user in users.values()
        )

    wait_until(lambda: not receiving(), 30, "the interrupted uploads to end")
    left = {name: held(name) for name in users if not staged[name].exists()}
    assert any(0 < count < size for count in left.values()), left
    assert [(n["state"], n["version"]) for n in lab.status()["nodes"]] == [("ACTIVE", "9.2.13")] * 3

    again = confluo("upgrade", "-i", str(inventory), "--to", NEXT, "--yes", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    assert events[-1]["bytes_sent"] == sum(size - count for count in left.values()) < size * len(users)
    continued = {
        e["node"]: e["continued_from"] for e in events if e["event"] == "phase_done" and e["step"] == "transfer"
    }
    assert continued == left
    assert all(path.read_bytes() == archive.read_bytes() for path in staged.values())
    assert [(n["state"], n["version"]) for n in lab.status()["nodes"]] == [("ACTIVE", NEXT)] * 3


def test_a_lost_ssh_connection_mid_upgrade_is_survived(lab: LabHandle) -> None:
    """While node2 stops, its SSH sessions are killed and its sshd is down for 2 s: confluo reconnects."""
    lab.set("node1", tasks=1)
    lab.set("node3", tasks=2)
    user = lab.record.node("node2").user

    cut: list[bool] = []

    def cut_ssh(event: dict[str, Any], _: object) -> None:
        # Once: the retry after the reconnect starts the stop again, and a second cut would be another fault.
        if event["event"] == "phase_started" and event["message"] == "node2: stop" and not cut:
            cut.append(True)
            lab.fault("node2", "ssh-down")
            subprocess.run(["pkill", "-KILL", "-u", str(user), "-x", "sshd"], check=False)
            time.sleep(2)
            lab.fault("node2", "clear")

    run = upgrade_watching(lab.inventory, cut_ssh)
    assert run.exit_code == 0, run.stderr
    assert any("reconnecting" in event.get("message", "") for event in run.events)
    assert [(n["state"], n["version"]) for n in lab.status()["nodes"]] == [("ACTIVE", NEXT)] * 3


def test_an_interrupted_run_exits_130_and_loses_nothing(lab: LabHandle) -> None:
    def interrupt(event: dict[str, Any], process: subprocess.Popen[str]) -> None:
        if event["event"] == "node_done" and process.poll() is None:
            process.send_signal(signal.SIGINT)

    run = upgrade_watching(lab.inventory, interrupt)
    assert run.exit_code == 130
    assert "interrupted" in run.stderr
    for node in lab.status()["nodes"]:
        assert Path(node["home"], "confluence.cfg.xml").is_file()
        assert (Path(node["install_dir"]).parent / "9.2.13" / "bin/start-confluence.sh").is_file()


def test_old_installations_beyond_keep_releases_are_pruned_but_never_the_previous_one(
    lab: LabHandle, tmp_path: Path
) -> None:
    bases = [Path(node["install_dir"]).parent for node in lab.status()["nodes"]]
    for base in bases:
        for older in ("9.2.11", "9.2.12"):
            shutil.copytree(base / "9.2.13", base / older, symlinks=True)
    inventory = variant(lab, tmp_path, lambda doc: doc.update(keep_releases=2))
    plan = confluo("plan", "-i", str(inventory), "--to", NEXT)
    assert "prune old installations" in plan.stdout and "9.2.11" in plan.stdout
    result = confluo("upgrade", "-i", str(inventory), "--to", NEXT, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    for base in bases:
        assert sorted(p.name for p in base.iterdir()) == ["9.2.13", "9.2.14", "current"]


def test_status_shows_the_cluster_and_every_node_from_the_api_and_the_disk(shared_lab: LabHandle) -> None:
    shared_lab.set("node2", tasks=4, users=7)
    result = confluo("status", "-i", str(shared_lab.inventory), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["state"], status["upgrade_mode"]) == ("STABLE", False)
    rows = {row["name"]: row for row in status["nodes"]}
    assert sorted(rows) == ["node1", "node2", "node3"]
    assert {(r["state"], r["version"], r["version_on_disk"]) for r in rows.values()} == {("ACTIVE", "9.2.13", "9.2.13")}
    assert (rows["node2"]["tasks"], rows["node2"]["users"]) == (4, 7)
    table = confluo("status", "-i", str(shared_lab.inventory))
    assert "STABLE, upgrade mode off" in table.stdout and "node3" in table.stdout


def test_a_cluster_whose_nodes_were_never_named_is_matched_by_address(lab: LabHandle) -> None:
    for node in lab.status()["nodes"]:
        setenv = Path(node["install_dir"]) / "bin/setenv.sh"
        kept = [line for line in setenv.read_text().splitlines() if "cluster.node.name" not in line]
        setenv.write_text("\n".join(kept) + "\n")
        lab.stop_node(node["name"])
    for name in ("node1", "node2", "node3"):
        lab.wait_for_state(name, "OFFLINE")
        lab.start_node(name)
    _, user, password = lab.api

    def cluster() -> dict[str, Any]:
        response = httpx.get(lab.lb_url + "/rest/zdu/cluster", auth=(user, password))
        return response.json() if response.status_code == 200 else {"nodes": []}

    wait_until(
        lambda: [(n["name"], n["state"]) for n in cluster()["nodes"]] == [("Not configured", "ACTIVE")] * 3,
        30,
        "three unnamed nodes in the cluster",
    )
    result = confluo("upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    final = cluster()
    assert final["state"] == "STABLE"
    assert sorted((n["ipAddress"], n["version"], n["state"]) for n in final["nodes"]) == [
        (f"127.0.{lab.record.slot}.{10 + k}", NEXT, "ACTIVE") for k in (1, 2, 3)
    ]


def test_a_node_whose_api_fails_behind_the_load_balancer_does_not_stop_the_upgrade(lab: LabHandle) -> None:
    lab.fault("node2", "api-500")  # a third of the API calls through HAProxy now answer 500
    result = confluo("upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    lab.fault("node2", "clear")
    status = lab.status()
    assert status["cluster"]["state"] == "STABLE"
    assert [(n["state"], n["version"]) for n in status["nodes"]] == [("ACTIVE", NEXT)] * 3


def test_postgresql_cluster_behind_nginx_needs_no_driver_copy(lab_factory: Any) -> None:
    lab = lab_factory(db="postgresql", lb="nginx")
    plan = confluo("plan", "-i", str(lab.inventory), "--to", NEXT)
    assert plan.returncode == 0, plan.stderr
    assert "mysql-connector" not in plan.stdout
    with Traffic(lab.lb_url) as traffic:
        result = confluo("upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    for node in lab.status()["nodes"]:
        assert (node["state"], node["version"]) == ("ACTIVE", NEXT)
        libs = sorted(p.name for p in (Path(node["install_dir"]) / "confluence/WEB-INF/lib").iterdir())
        assert any(name.startswith("postgresql-") for name in libs) and not any("mysql" in name for name in libs)
    # Open-source nginx only notices a stopped node when a request to it fails; until confluo drains nodes in
    # the load balancer, some requests see 502. The pages keep being served by the other nodes all the same.
    assert traffic.ok > 20 and traffic.ok > 5 * traffic.failed, traffic.errors


def test_refuses_a_node_whose_installation_changed_without_a_restart(shared_lab: LabHandle) -> None:
    base = Path(shared_lab.node("node1")["install_dir"]).parent
    pom = "confluence/META-INF/maven/com.atlassian.confluence/confluence-webapp/pom.properties"
    shutil.copytree(base / "9.2.13", base / "9.2.12", symlinks=True)
    (base / "9.2.12" / pom).write_text((base / "9.2.12" / pom).read_text().replace("9.2.13", "9.2.12"))
    (base / "current").unlink()
    (base / "current").symlink_to(base / "9.2.12")
    try:
        message = refused(shared_lab, shared_lab.inventory)
    finally:
        (base / "current").unlink()
        (base / "current").symlink_to(base / "9.2.13")
        shutil.rmtree(base / "9.2.12")
    assert "node1 runs 9.2.13 but 9.2.12 is installed" in message


def test_a_node_that_hangs_while_starting_halts_at_its_deadline(lab: LabHandle, tmp_path: Path) -> None:
    lab.set("node2", tasks=9)
    lab.set("node3", tasks=9)
    lab.fault("node1", "hang-start")
    inventory = variant(lab, tmp_path, lambda doc: doc["defaults"]["timeouts"].update(start_seconds=3))
    result = confluo("upgrade", "-i", str(inventory), "--to", NEXT, "--yes")
    assert result.returncode == 5, result.stdout + result.stderr
    assert f"node1: not ACTIVE on {NEXT} within 3 s" in result.stderr and "STARTING" in result.stderr
    others = [n for n in lab.status()["nodes"] if n["name"] != "node1"]
    assert [(n["state"], n["version"]) for n in others] == [("ACTIVE", "9.2.13")] * 2


def test_a_node_that_crashes_while_it_waits_its_turn_is_upgraded_next(lab: LabHandle, tmp_path: Path) -> None:
    """node3 is the busiest, but once it crashed (while node1 proves it keeps serving) it serves nobody:
    upgrading it first costs no capacity."""
    lab.set("node2", tasks=1)
    lab.set("node3", tasks=2)
    inventory = variant(lab, tmp_path, lambda doc: doc["defaults"]["timeouts"].update(min_ready_seconds=2))

    def crash_node3(event: dict[str, Any], _: object) -> None:
        if event["event"] == "node_done" and event["node"] == "node1":
            lab.fault("node3", "crash")

    run = upgrade_watching(inventory, crash_node3)
    assert run.exit_code == 0, run.stderr
    assert run.nodes_started() == ["node1", "node3", "node2"]
    status = lab.status()
    assert status["cluster"]["state"] == "STABLE"
    assert [(n["state"], n["version"]) for n in status["nodes"]] == [("ACTIVE", NEXT)] * 3


def test_nodes_reached_through_aliases_from_the_users_ssh_config(lab: LabHandle, tmp_path: Path) -> None:
    """Host, login user and key come from ~/.ssh/config; confluo learns the login user from the node."""
    record = lab.record
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    config = "".join(
        f"Host lab-{node.name}\n  HostName {node.address}\n  User {node.user}\n  IdentityFile {record.client_key}\n"
        for node in record.nodes
    )
    (home / ".ssh" / "config").write_text(config)

    def change(doc: dict[str, Any]) -> None:
        doc["defaults"]["ssh"].pop("key")
        for node in doc["nodes"]:
            node["ssh"] = {"alias": f"lab-{node['name']}"}
            node.pop("host")

    inventory = variant(lab, tmp_path, change)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "confluo", *args, "-i", str(inventory)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(home)},
        )  # fmt: skip

    plan = run("plan")
    assert plan.returncode == 0, plan.stderr
    assert "/current/bin/stop-confluence.sh" in plan.stdout and "sudo -n -u" not in plan.stdout
    upgrade = run("upgrade", "--yes")
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert [(n["state"], n["version"]) for n in lab.status()["nodes"]] == [("ACTIVE", NEXT)] * 3


def test_a_second_node_is_never_taken_out_while_another_is_down(lab: LabHandle, tmp_path: Path) -> None:
    """node1 is upgraded, then crashes while it proves it keeps serving (min_ready_seconds): stopping node2 now
    would leave one node of three. confluo halts instead."""
    lab.set("node2", tasks=1)
    lab.set("node3", tasks=2)
    inventory = variant(
        lab, tmp_path, lambda doc: doc["defaults"]["timeouts"].update(start_seconds=3, min_ready_seconds=2)
    )

    def crash_node1(event: dict[str, Any], _: object) -> None:
        if event["event"] == "node_done" and event["node"] == "node1":
            lab.fault("node1", "crash")

    run = upgrade_watching(inventory, crash_node1)
    assert run.exit_code == 5
    assert "would take a second node out of service" in run.stderr
    others = [n for n in lab.status()["nodes"] if n["name"] != "node1"]
    assert [(n["state"], n["version"]) for n in others] == [("ACTIVE", "9.2.13")] * 2


def test_refuses_when_sudo_does_not_allow_a_needed_command(shared_lab: LabHandle) -> None:
    sudoers = Path(f"/etc/sudoers.d/confluo-lab-{shared_lab.record.slot}")
    original = sudoers.read_text()
    sudoers.write_text(original.replace("/usr/bin/tee", "/usr/bin/true"))
    try:
        message = refused(shared_lab, shared_lab.inventory)
    finally:
        sudoers.write_text(original)
    for name in ("node1", "node2", "node3"):
        assert f"{name}: `sudo -n` is not allowed for /usr/bin/tee" in message


def test_refuses_when_sudo_does_not_let_the_login_user_signal_as_the_confluence_user(
    shared_lab: LabHandle, tmp_path: Path
) -> None:
    """The hard stop kills as the Confluence user: a sudoers without that `kill` rule is found before any change."""

    def run_as_nobody(doc: dict[str, Any]) -> None:
        for node in doc["nodes"]:
            node["run_as"] = "nobody"

    message = refused(shared_lab, variant(shared_lab, tmp_path, run_as_nobody))
    for name in ("node1", "node2", "node3"):
        assert f"{name}: `sudo -n` is not allowed for /usr/bin/kill (as nobody)" in message


def test_refuses_when_a_local_home_is_missing(shared_lab: LabHandle, tmp_path: Path) -> None:
    inventory = variant(shared_lab, tmp_path, lambda doc: doc["nodes"][1].update(home="/nonexistent/confluence-home"))
    message = refused(shared_lab, inventory)
    assert "node2: the local home /nonexistent/confluence-home does not exist" in message


def test_a_node_whose_search_index_falls_behind_is_kept_out_for_index_seconds_then_named(
    lab: LabHandle, tmp_path: Path
) -> None:
    """node2's index takes nothing (the lab's index-broken fault) while the cluster writes journal entries: after
    its start it waits out of the pool for timeouts.index_seconds, then the upgrade goes on and names it; the nodes
    whose index caught up are not held."""
    lab.set("node1", tasks=1)
    lab.set("node3", tasks=2)
    lab.fault("node2", "index-broken")
    verified = confluo("verify", "-i", str(lab.inventory), "--timeout", "2")  # a page created and deleted
    assert verified.returncode == 7 and "node2: search" in verified.stderr, verified.stderr
    journal = Path(lab.node("node2")["home"], "journal", "main_index")
    behind = int(journal.read_text())
    assert behind < lab.status()["cluster"]["index_journal"]

    def indexed_within(document: Any) -> None:
        document["defaults"].setdefault("timeouts", {})["index_seconds"] = 3

    run = upgrade_watching(variant(lab, tmp_path, indexed_within), lambda event, process: None)
    assert run.exit_code == 0, run.stderr
    notes = [e["message"] for e in run.events if e["event"] == "note" and "search index" in e["message"]]
    assert len(notes) == 1 and notes[0].startswith("node2: its search index is ") and "after 3 s" in notes[0]
    held = [e["node"] for e in run.events if e["event"] == "phase_done" and e.get("step") == "index"]
    assert held == ["node2"], held
    phases = [(e["node"], e.get("step")) for e in run.events if e["event"] == "phase_done" and e.get("node") == "node2"]
    assert phases.index(("node2", "index")) < phases.index(("node2", "ready")), "out of the pool while it waits"
    assert [(n["state"], n["version"]) for n in lab.status()["nodes"]] == [("ACTIVE", NEXT)] * 3
    lab.fault("node2", "clear")
