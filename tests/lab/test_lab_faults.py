"""Every fault the lab can inject, each observable the way confluo would observe it.

One lab serves the module: each fault gets a node of its own, so the tests do not disturb each other.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from labkit import LabHandle, start_lab, wait_until

from confluo.lab import hosts

pytestmark = pytest.mark.lab

NODE_OF = {
    "fail-start": "node1",
    "hang-start": "node2",
    "hang-stop": "node3",
    "slow-stop": "node4",
    "crash": "node5",
    "ssh-down": "node6",
    "api-500": "node7",
    "pages-broken": "node8",
}
HEALTHY = "node9"  # never disturbed
START, STOP = 0.5, 0.3


@pytest.fixture(scope="module")
def faulty_lab() -> Iterator[LabHandle]:
    with start_lab(nodes=len(NODE_OF) + 1, start_seconds=START, stop_seconds=STOP) as handle:
        yield handle


def restart(lab: LabHandle, node: str) -> None:
    lab.stop_node(node)
    lab.wait_for_state(node, "OFFLINE")
    lab.start_node(node)


def status_of(lab: LabHandle, node: str) -> httpx.Response:
    return httpx.get(f"{lab.node(node)['url']}/status", timeout=5)


def zdu_cluster(lab: LabHandle, node: str) -> httpx.Response:
    _, user, password = lab.api
    return httpx.get(f"{lab.node(node)['url']}/rest/zdu/cluster", auth=(user, password), timeout=5)


def test_fail_start_leaves_the_node_in_error_after_a_restart(faulty_lab: LabHandle) -> None:
    node = NODE_OF["fail-start"]
    faulty_lab.fault(node, "fail-start")
    assert faulty_lab.node(node)["state"] == "ACTIVE"  # a running node is not affected until it restarts
    restart(faulty_lab, node)
    entry = faulty_lab.wait_for_state(node, "ERROR")
    assert entry["status"] == "ERROR"
    assert entry["problems"]
    assert status_of(faulty_lab, node).status_code == 500


def test_hang_start_keeps_the_node_starting(faulty_lab: LabHandle) -> None:
    node = NODE_OF["hang-start"]
    faulty_lab.fault(node, "hang-start")
    restart(faulty_lab, node)
    faulty_lab.wait_for_state(node, "STARTING")
    time.sleep(START * 4)
    assert faulty_lab.node(node)["state"] == "STARTING"
    response = status_of(faulty_lab, node)
    assert (response.status_code, response.json()["state"]) == (503, "STARTING")


def test_hang_stop_keeps_the_node_terminating(faulty_lab: LabHandle) -> None:
    node = NODE_OF["hang-stop"]
    faulty_lab.fault(node, "hang-stop")
    pid = faulty_lab.node(node)["pid"]
    faulty_lab.stop_node(node)
    faulty_lab.wait_for_state(node, "TERMINATING")
    time.sleep(STOP * 5)
    assert faulty_lab.node(node)["state"] == "TERMINATING"
    assert hosts.runs(pid, "confluence-node.pyz")  # only SIGKILL ends it (`lab down` does)


def test_slow_stop_takes_much_longer_than_a_normal_stop(faulty_lab: LabHandle) -> None:
    node = NODE_OF["slow-stop"]
    faulty_lab.fault(node, "slow-stop")
    began = time.monotonic()
    faulty_lab.stop_node(node)
    faulty_lab.wait_for_state(node, "TERMINATING")
    time.sleep(STOP * 3)
    assert faulty_lab.node(node)["state"] == "TERMINATING"
    faulty_lab.wait_for_state(node, "OFFLINE", timeout=STOP * 20 + 5)
    assert time.monotonic() - began > STOP * 5


def test_crash_kills_the_node_at_once_and_the_cluster_sees_it_offline(faulty_lab: LabHandle) -> None:
    node = NODE_OF["crash"]
    pid = faulty_lab.node(node)["pid"]
    assert "SIGKILL" in faulty_lab.fault(node, "crash")
    assert not hosts.pid_alive(pid)
    entry = faulty_lab.wait_for_state(node, "OFFLINE", timeout=5)
    assert entry["status"] == "UNREACHABLE"


@pytest.mark.skipif(not hosts.ssh_supported(), reason="ssh mode needs root and /usr/sbin/sshd")
def test_ssh_down_refuses_ssh_until_the_fault_is_cleared(faulty_lab: LabHandle) -> None:
    node = NODE_OF["ssh-down"]
    assert faulty_lab.ssh(node, "true").returncode == 0
    faulty_lab.fault(node, "ssh-down")
    refused = faulty_lab.ssh(node, "true")
    assert refused.returncode == 255
    assert "Connection refused" in refused.stderr
    assert "sshd is down" in faulty_lab.node(node)["problems"]
    assert faulty_lab.node(node)["state"] == "ACTIVE"  # Confluence itself keeps running
    assert "sshd started again" in faulty_lab.fault(node, "clear")
    assert faulty_lab.ssh(node, "true").returncode == 0
    assert faulty_lab.node(node)["problems"] == []


def test_api_500_breaks_the_zdu_api_of_that_node_only_and_not_its_pages(faulty_lab: LabHandle) -> None:
    node = NODE_OF["api-500"]
    faulty_lab.fault(node, "api-500")
    wait_until(lambda: zdu_cluster(faulty_lab, node).status_code == 500, 5, f"{node}'s API to answer 500")
    assert zdu_cluster(faulty_lab, HEALTHY).status_code == 200
    assert home_page(faulty_lab, node).status_code == 200
    faulty_lab.fault(node, "clear")
    wait_until(lambda: zdu_cluster(faulty_lab, node).status_code == 200, 5, f"{node}'s API to recover")


def home_page(lab: LabHandle, node: str) -> httpx.Response:
    return httpx.get(f"{lab.node(node)['url']}/", timeout=5)


def space_home_page(lab: LabHandle, node: str) -> httpx.Response:
    _, user, password = lab.api
    return httpx.get(f"{lab.node(node)['url']}/rest/api/content/98306", params={"expand": "body.view"},
                     auth=(user, password), timeout=5)  # fmt: skip


def test_pages_broken_leaves_the_node_active_and_its_api_up_but_every_page_answers_500(faulty_lab: LabHandle) -> None:
    node = NODE_OF["pages-broken"]
    assert space_home_page(faulty_lab, node).json()["body"]["view"]["value"].startswith('<div class="wiki-content">')
    faulty_lab.fault(node, "pages-broken")
    wait_until(lambda: home_page(faulty_lab, node).status_code == 500, 5, f"{node}'s pages to answer 500")
    assert space_home_page(faulty_lab, node).status_code == 500
    assert status_of(faulty_lab, node).json() == {"state": "RUNNING"}
    assert zdu_cluster(faulty_lab, node).status_code == 200 and faulty_lab.node(node)["state"] == "ACTIVE"
    assert home_page(faulty_lab, HEALTHY).status_code == 200 and space_home_page(faulty_lab, HEALTHY).status_code == 200
    faulty_lab.fault(node, "clear")
    wait_until(lambda: home_page(faulty_lab, node).status_code == 200, 5, f"{node}'s pages to recover")
