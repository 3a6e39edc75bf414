"""`confluo rollback` against a lab: an upgrade halted in MIXED (node1 on the new version, node2 rolled back by
the failed run) is taken back to STABLE on the old version, node by node behind HAProxy, with nothing lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from labkit import NEXT, LabHandle
from labruns import Traffic, confluo, upgrade_watching

pytestmark = pytest.mark.lab

OLD = "9.2.13"


def test_rollback_all_from_mixed_brings_the_cluster_back_to_stable_on_the_old_version(lab: LabHandle) -> None:
    lab.set("node2", tasks=3)
    lab.set("node3", tasks=9)
    lab.fault("node2", "fail-start")
    old = {node["name"]: Path(node["install_dir"]).resolve() for node in lab.status()["nodes"]}

    def new_release_only(event: dict[str, Any], _: object) -> None:
        if event["event"] == "rollback_started":
            lab.fault("node2", "clear")

    halted = upgrade_watching(lab.inventory, new_release_only)
    assert halted.exit_code == 5 and halted.nodes_started() == ["node1", "node2"], halted.stderr
    assert {n["name"]: n["version"] for n in lab.status()["nodes"]} == {"node1": NEXT, "node2": OLD, "node3": OLD}
    assert lab.status()["cluster"]["state"] == "MIXED"

    dry = confluo("rollback", "-i", str(lab.inventory), "--all", "--dry-run")
    assert dry.returncode == 0 and "rolling back: node1" in dry.stdout and "node2" not in dry.stdout, dry.stderr
    assert lab.node("node1")["version"] == NEXT

    homes = {n["name"]: sorted(p.name for p in Path(n["home"]).iterdir()) for n in lab.status()["nodes"]}
    with Traffic(lab.lb_url) as traffic:
        result = confluo("rollback", "-i", str(lab.inventory), "--all", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["node"] for e in events if e["event"] == "node_started"] == ["node1"]
    assert events[-1] == {**events[-1], "event": "done"} and "STABLE" in events[-1]["message"]

    status = lab.status()
    assert (status["cluster"]["state"], status["cluster"]["upgrade_mode"]) == ("STABLE", False)
    for node in status["nodes"]:
        assert (node["state"], node["version"]) == ("ACTIVE", OLD)
        assert Path(node["install_dir"]).resolve() == old[node["name"]]
        assert sorted(p.name for p in Path(node["home"]).iterdir()) == homes[node["name"]]
    new_install = Path(lab.node("node1")["install_dir"]).resolve().parent / NEXT
    assert new_install.is_dir(), "the new installation is kept for the next try"
    assert traffic.ok > 10 and traffic.failed == 0, traffic.errors

    again = confluo("rollback", "-i", str(lab.inventory), "--yes")
    assert again.returncode == 3 and "no upgrade is in progress" in again.stderr
