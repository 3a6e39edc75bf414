"""`confluo verify` against a lab: real HTTP through HAProxy to real node processes, each with its own search
index that takes new pages a little later, and the lab's fault that breaks one node's index."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from labkit import LabHandle, start_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def verify_lab() -> Iterator[LabHandle]:
    with start_lab(nodes=3) as handle:
        yield handle


def verify(lab: LabHandle, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confluo", "verify", "-i", str(lab.inventory), *args],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def report_of(stdout: str) -> dict[str, Any]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return next(line for line in lines if line["event"] == "verify_report")


HOME = ["Lab Home"]  # the space's own home page, there before and after


def pages_in_the_space(lab: LabHandle) -> list[str]:
    """Every page of the space LAB, current or in the trash, as the database holds them."""
    url, user, password = lab.api
    titles = []
    for status in ("current", "trashed"):
        reply = httpx.get(f"{url}/rest/api/content", params={"spaceKey": "LAB", "status": status},
                          auth=(user, password), timeout=10)  # fmt: skip
        assert reply.status_code == 200, reply.text
        titles += [page["title"] for page in reply.json()["results"]]
    return titles


def test_verify_passes_on_a_healthy_lab_and_leaves_nothing_behind(verify_lab: LabHandle) -> None:
    run = verify(verify_lab, "--json", "--timeout", "30")
    assert run.returncode == 0, run.stderr
    report = report_of(run.stdout)
    assert report["passed"] and report["api_url"] == verify_lab.lb_url and report["space"] == "LAB"
    assert [(n["name"], n["read"], n["search"]) for n in report["nodes"]] == [
        ("node1", True, True), ("node2", True, True), ("node3", True, True)]  # fmt: skip
    assert [n["url"] for n in report["nodes"]] == [verify_lab.node(f"node{i}")["url"] for i in (1, 2, 3)]
    assert report["cleanup"] == {"trashed": True, "purged": True, "problem": None}
    assert pages_in_the_space(verify_lab) == HOME
    password = verify_lab.record.admin_password
    assert password not in run.stdout and password not in run.stderr


def test_verify_names_the_node_whose_index_is_broken_and_still_deletes_its_page(verify_lab: LabHandle) -> None:
    verify_lab.fault("node2", "index-broken")
    try:
        run = verify(verify_lab, "--timeout", "4")
        journal = verify_lab.status()["cluster"]["index_journal"]
        behind = verify_lab.node("node2")["index_position"]
    finally:
        verify_lab.fault("node2", "clear")
    assert run.returncode == 7, (run.stdout, run.stderr)
    assert "node2: search" in run.stderr and "not found within 4 s" in run.stderr
    assert "node1:" not in run.stderr and "node3:" not in run.stderr
    rows = {line.split("│")[1].strip(): line for line in run.stdout.splitlines() if line.count("│") > 4}
    assert "FAILED" in rows["node2"] and "FAILED" not in rows["node1"] + rows["node3"]
    assert "deleted, and purged from the trash" in run.stdout
    assert pages_in_the_space(verify_lab) == HOME and behind < journal
    again = verify(verify_lab, "--timeout", "30")  # with the fault cleared node2 catches up: it was the fault
    assert again.returncode == 0, again.stderr
