"""`up` and `down` as a whole: nothing left behind, labs side by side, local mode, failures cleaned up."""

from __future__ import annotations

import concurrent.futures
import contextlib
import grp
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from labkit import LabHandle, lab_options, new_lab_dir, start_lab, wait_until

from confluo.lab import hosts, lifecycle, model, node_processes, slots, tarball

pytestmark = pytest.mark.lab
requires_ssh = pytest.mark.skipif(not hosts.ssh_supported(), reason="ssh mode needs root and /usr/sbin/sshd")


def listening(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) == 0


def lab_pids(lab: LabHandle) -> set[int]:
    record = lab.record
    pids = node_processes.node_process_pids(record)
    pids |= {pid for node in record.nodes if (pid := node.sshd.pid()) is not None}
    lb = record.balancer
    if lb is not None and (pid := lb.pid()) is not None:
        pids.add(pid)
    return pids


def pgrep_uid(uid: int) -> str:
    """Live processes of `uid`. Zombies are left out: they are dead, and this machine's init reaps them late."""
    live_states = "D,R,S,T,t,I"
    return subprocess.run(["pgrep", "-U", str(uid), "-r", live_states], capture_output=True, text=True).stdout.strip()


@requires_ssh
def test_down_leaves_no_process_no_user_and_no_sudoers(lab: LabHandle) -> None:
    record = lab.record
    pids = lab_pids(lab)
    assert len(pids) == 3 + 3 + 1  # nodes, sshds, HAProxy
    uids = {name: pwd.getpwnam(name).pw_uid for name in hosts.lab_users(record.slot)}
    assert sorted(uids) == [f"cl{record.slot}n{k}" for k in (1, 2, 3)]
    node2_uid = uids[f"cl{record.slot}n2"]
    node2_processes = pgrep_uid(node2_uid)
    session = subprocess.Popen(lab.ssh_argv("node2", "sleep 300"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: pgrep_uid(node2_uid) != node2_processes, 10, "the ssh session to start")
    lab.fault("node1", "hang-stop")
    lab.stop_node("node1")  # it now ignores SIGTERM: down has to SIGKILL it
    lab.wait_for_state("node1", "TERMINATING")

    lab.down()  # a hang here is caught by pytest-timeout; no timed assertion on a noisy machine
    session.wait(10)

    assert [pid for pid in pids if hosts.pid_alive(pid)] == []
    for name, uid in uids.items():
        assert hosts.processes_of_uid(uid) == [], name
        assert pgrep_uid(uid) == "", name
        assert not hosts.user_exists(name)
        assert not Path(f"/home/{name}").exists()
    with pytest.raises(KeyError):
        grp.getgrnam(f"cl{record.slot}")
    assert not hosts.sudoers_path(record.slot).exists()
    assert not model.lab_json(lab.dir).exists()
    assert not (slots.SLOTS_DIR / str(record.slot)).exists()
    for node in record.nodes:
        assert not listening(node.address, 8090)
        assert not listening(node.address, 22)
    assert not listening(model.lb_address(record.slot), 8080)


def test_two_labs_run_side_by_side(lab_factory: Callable[..., LabHandle]) -> None:
    first = lab_factory(nodes=2)
    second = lab_factory(nodes=2, lb="nginx")
    slots = {first.record.slot, second.record.slot}
    assert len(slots) == 2
    for lab in (first, second):
        response = httpx.get(f"{lab.lb_url}/", timeout=5)
        assert response.status_code == 200
        assert [n["state"] for n in lab.status()["nodes"]] == ["ACTIVE", "ACTIVE"]
    first.down()
    assert httpx.get(f"{second.lb_url}/", timeout=5).status_code == 200
    assert [n["state"] for n in second.status()["nodes"]] == ["ACTIVE", "ACTIVE"]


def test_local_mode_works_without_sshd_or_users(
    lab_factory: Callable[..., LabHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(hosts.MODE_ENV, "local")
    lab = lab_factory(nodes=2)
    record = lab.record
    status = lab.status()
    assert status["mode"] == "local"
    assert all("ssh" not in node for node in status["nodes"])
    assert hosts.lab_users(record.slot) == []
    assert not hosts.sudoers_path(record.slot).exists()
    for node in status["nodes"]:
        assert node["state"] == "ACTIVE"
        assert Path(f"/proc/{node['pid']}").stat().st_uid == os.geteuid()
        assert not listening(node["address"], 22)
    inventory = lab.inventory.read_text()
    assert inventory.count("transport: local") == 2
    assert "run_as" not in inventory
    assert httpx.get(f"{lab.lb_url}/", timeout=5).status_code == 200
    with pytest.raises(hosts.LabError, match="local mode"):
        lab.fault("node1", "ssh-down")


def test_a_failed_up_takes_down_what_it_had_started(monkeypatch: pytest.MonkeyPatch) -> None:
    real_build = tarball.build_archive

    def build_only_the_first(version: str, out_dir: Path, size_mb: int = 0) -> Path:
        if version != model.DEFAULT_VERSION:
            raise OSError("disk full (simulated)")
        return real_build(version, out_dir, size_mb)

    claimed: list[int] = []
    real_claim = slots.claim_slot
    monkeypatch.setattr(lifecycle.tarball, "build_archive", build_only_the_first)
    monkeypatch.setattr(lifecycle, "claim_slot", lambda lab_dir: claimed.append(real_claim(lab_dir)) or claimed[-1])
    lab_dir = new_lab_dir("failed-")
    with pytest.raises(OSError, match="disk full"):
        lifecycle.up(lab_dir, lab_options(nodes=2))
    shutil.rmtree(lab_dir)
    slot = claimed[0]
    assert not model.lab_json(lab_dir).exists()
    assert not (slots.SLOTS_DIR / str(slot)).exists()
    assert hosts.lab_users(slot) == []
    assert not hosts.sudoers_path(slot).exists()
    for index in (1, 2):
        assert not listening(model.node_address(slot, index), 8090)
        assert not listening(model.node_address(slot, index), 22)


def test_the_cli_brings_a_lab_up_and_down() -> None:
    lab_dir = new_lab_dir("cli-")
    up = ["confluo", "lab", "up", "--dir", str(lab_dir), "--nodes", "2", "--start-seconds", "0.5"]
    try:
        started = subprocess.run([*up, "--stop-seconds", "0.3"], capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        assert "2 nodes ACTIVE" in started.stdout
        assert (lab_dir / "inventory.yaml").is_file()
        assert (lab_dir / "atlassian-confluence-9.2.14.tar.gz").is_file()
    finally:
        stopped = subprocess.run(["confluo", "lab", "down", "--dir", str(lab_dir)], capture_output=True, text=True)
    assert stopped.returncode == 0, stopped.stderr
    assert "is down" in stopped.stdout
    again = subprocess.run(["confluo", "lab", "down", "--dir", str(lab_dir)], capture_output=True, text=True)
    assert again.returncode == 1
    assert "no lab in" in again.stderr
    shutil.rmtree(lab_dir)


def test_labs_started_at_the_same_time_get_their_own_slots() -> None:
    with concurrent.futures.ThreadPoolExecutor(2) as pool, contextlib.ExitStack() as labs:
        starting = [pool.submit(labs.enter_context, start_lab(nodes=1)) for _ in range(2)]
        first, second = (future.result(timeout=60) for future in starting)
        assert first.record.slot != second.record.slot
        for lab in (first, second):
            assert httpx.get(f"{lab.lb_url}/", timeout=5).status_code == 200
            if hosts.ssh_supported():
                assert lab.ssh("node1", "true").returncode == 0
