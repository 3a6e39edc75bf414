"""The load balancer in the upgrade, against the real HAProxy, nginx and Apache the lab starts, configured as
production is (no retry of a failed request on another server): a full `confluo upgrade` under ~20 requests/s of
logged-in users reading and creating pages loses no request, because confluo takes each node out of the pool
first; a drain that outlasts its deadline halts before the stop; a change the load balancer does not take, and a
configuration nginx refuses, halt before the stop; a node an interrupted run left out is put back by the next run;
a load balancer that is down, or does not know a node, is refused before anything changes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from labkit import LabHandle
from loadkit import Load
from test_upgrade import NEXT, confluo, variant

from confluo.lab import balancer, model

pytestmark = pytest.mark.lab

SOURCE = model.DEFAULT_VERSION


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _versions(lab: LabHandle) -> list[tuple[str, str]]:
    return [(n["state"], n["version"]) for n in lab.status()["nodes"]]


def _haproxy_states(lab: LabHandle) -> dict[str, str]:
    socket_path = lab.record.balancer.socket  # type: ignore[union-attr]
    assert socket_path is not None
    return balancer.haproxy_server_states(socket_path)


@pytest.mark.parametrize("kind", ["haproxy", "nginx", "apache"])
def test_a_full_upgrade_under_load_loses_no_request(lab_factory: Callable[..., LabHandle], kind: str) -> None:
    lab = lab_factory(nodes=3, lb=kind)
    _, user, password = lab.api
    with Load(lab.lb_url, (user, password), users=4, rps=20) as load:
        result = confluo("upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _versions(lab) == [("ACTIVE", NEXT)] * 3
    assert load.sent > 100, load.sent
    assert load.failed == 0, load.errors
    assert load.created > 10, "pages were created through the load balancer all along"
    events = _events(result.stdout)
    # nginx has no drain of its own: its drain is `down` already, so its maint is found done (skipped).
    done = [(e["node"], e["step"]) for e in events if e["event"] in ("phase_done", "phase_skipped") and e.get("node")]
    for node in ("node1", "node2", "node3"):
        steps = [step for name, step in done if name == node and step in ("drain", "maint", "stop", "start", "ready")]
        assert steps == ["drain", "maint", "stop", "start", "ready"], (node, steps)
    summary = next(e for e in events if e["event"] == "summary")
    for node, seconds in summary["out_of_service_seconds"].items():
        assert summary["out_of_pool_seconds"][node] > seconds  # out of the pool all through its stop and start
    report = json.loads(confluo("lb", "status", "-i", str(lab.inventory), "--json").stdout)
    assert [n["admin"] for n in report["nodes"]] == ["ready"] * 3


def test_a_drain_past_its_deadline_halts_before_the_stop(lab_factory: Callable[..., LabHandle], tmp_path: Path) -> None:
    lab = lab_factory(nodes=3)
    for node in ("node1", "node2", "node3"):
        lab.set(node, users=2)  # logged in, and they do not leave

    def halt_after_one_second(document: dict[str, Any]) -> None:
        document["load_balancer"] |= {"drain_seconds": 1, "on_drain_timeout": "halt"}

    inventory = variant(lab, tmp_path, halt_after_one_second)
    result = confluo("upgrade", "-i", str(inventory), "--to", NEXT, "--yes")
    assert result.returncode == 5, result.stdout + result.stderr
    assert "node1: still 2 active users in the cluster 1 s after the drain" in result.stderr
    assert _versions(lab) == [("ACTIVE", SOURCE)] * 3, "nobody was stopped"
    assert _haproxy_states(lab) == {"node1": "DRAIN", "node2": "UP", "node3": "UP"}, "drained, still serving"
    ready = confluo("lb", "ready", "node1", "-i", str(inventory))
    assert ready.returncode == 0 and "node1: ready UP in the load balancer" in ready.stdout, ready.stderr
    assert _haproxy_states(lab)["node1"] == "UP"
    for node in ("node1", "node2", "node3"):
        lab.set(node, users=0)  # the users have gone: the same upgrade again continues and finishes
    result = confluo("upgrade", "-i", str(inventory), "--to", NEXT, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _versions(lab) == [("ACTIVE", NEXT)] * 3


STATUS_SCRIPT = """\
import sys
from pathlib import Path
from confluo.lab import balancer
state = balancer.haproxy_server_states(Path(sys.argv[1]))[sys.argv[2]]
print({"MAINT": "maint", "DRAIN": "drain"}.get(state, "ready"))
"""


def test_a_change_the_load_balancer_does_not_take_halts_before_the_stop(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    """An operator's drain command that exits 0 and changes nothing (the wrong load balancer, a typo'd pool): the
    real HAProxy's state, read back after it, says the node still takes users."""
    lab = lab_factory(nodes=2)
    socket_path = lab.record.balancer.socket  # type: ignore[union-attr]
    script = tmp_path / "haproxy-state.py"
    script.write_text(STATUS_SCRIPT)

    def commands(document: dict[str, Any]) -> None:
        document["load_balancer"] = {
            "kind": "command", "drain": "true", "ready": "true",
            "status": f"{sys.executable} {script} {socket_path} {{server}}",
        }  # fmt: skip
        for node in document["nodes"]:
            node.pop("lb_server", None)

    inventory = variant(lab, tmp_path, commands)
    result = confluo("upgrade", "-i", str(inventory), "--to", NEXT, "--yes")
    assert result.returncode == 5, result.stdout + result.stderr
    assert "commands for node1: server node1 is ready (ready) after the change, expected drain" in result.stderr
    assert _versions(lab) == [("ACTIVE", SOURCE)] * 2, "nobody was stopped"
    assert _haproxy_states(lab) == {"node1": "UP", "node2": "UP"}


def test_a_configuration_nginx_refuses_halts_before_the_stop_and_nginx_keeps_serving(
    lab_factory: Callable[..., LabHandle],
) -> None:
    lab = lab_factory(nodes=2, lb="nginx")
    lb = lab.record.balancer
    assert lb is not None
    upstream_before = lb.upstream_file.read_text()
    # Someone broke nginx.conf and did not reload: nginx still runs the good configuration.
    lb.config.write_text(lb.config.read_text().replace("http {", "http {\n    no_such_directive on;", 1))
    result = confluo("upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes")
    assert result.returncode == 5, result.stdout + result.stderr
    assert "refused the configuration" in result.stderr and "no_such_directive" in result.stderr
    assert lb.upstream_file.read_text() == upstream_before, "the previous file is back"
    assert sorted(p.name for p in lb.directory.iterdir() if "confluo" in p.name) == []
    assert _versions(lab) == [("ACTIVE", SOURCE)] * 2, "nobody was stopped"
    assert httpx.get(f"{lab.lb_url}/", timeout=5).status_code == 200


def test_a_node_an_interrupted_run_left_out_of_the_pool_is_put_back_by_the_next_run(
    lab_factory: Callable[..., LabHandle],
) -> None:
    lab = lab_factory(nodes=3)
    run = subprocess.Popen(
        [sys.executable, "-m", "confluo", "upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "XDG_STATE_HOME": str(Path(os.environ.get("TMPDIR", "/tmp")) / "confluo-test-state")},
    )  # fmt: skip
    assert run.stdout is not None
    out = None
    for line in run.stdout:
        event = json.loads(line)
        if event["event"] == "phase_done" and event.get("step") == "maint":
            run.send_signal(signal.SIGKILL)  # confluo dies with the node out of the pool, before its stop
            out = event["node"]
            break
    run.wait(30)
    assert out is not None
    states = _haproxy_states(lab)
    assert states[out] == "MAINT" and _versions(lab) == [("ACTIVE", SOURCE)] * 3
    status = confluo("lb", "status", "-i", str(lab.inventory))
    # In maintenance HAProxy suspends its health checks: it cannot tell whether the node is up.
    assert f"{out} (server {out}): maint, 0 sessions (MAINT)" in status.stdout, status.stdout + status.stderr
    plan = confluo("plan", "-i", str(lab.inventory), "--to", NEXT)
    assert f"earlier run left out of the pool\n-- {out}: back in load balancer" in plan.stdout, plan.stdout
    result = confluo("upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    first = next(e for e in _events(result.stdout) if e["event"] == "phase_done" and e.get("node"))
    assert (first["node"], first["step"], first["phase"]) == (out, "ready", "load balancer")
    assert _haproxy_states(lab) == {"node1": "UP", "node2": "UP", "node3": "UP"}
    assert _versions(lab) == [("ACTIVE", NEXT)] * 3


def test_the_preflight_refuses_a_load_balancer_that_is_down_or_does_not_know_a_node(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    lab = lab_factory(nodes=2, lb="nginx")
    text = lab.inventory.read_text().replace("lb_server: 127.0", "lb_server: 127.9")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(text)
    result = confluo("plan", "-i", str(unknown), "--to", NEXT)
    assert result.returncode == 3 and "the nginx load balancer" in result.stderr, result.stderr
    assert "has no server 127.9" in result.stderr
    haproxy = lab_factory(nodes=2)
    balancer.stop(haproxy.record.balancer)  # type: ignore[arg-type]
    result = confluo("upgrade", "-i", str(haproxy.inventory), "--to", NEXT, "--yes")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "node1: the haproxy load balancer: HAProxy at unix:" in result.stderr
    assert _versions(haproxy) == [("ACTIVE", SOURCE)] * 2


def test_haproxy_brings_each_node_back_gradually_with_a_weight_ramp(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    lab = lab_factory(nodes=2)

    def ramp(document: dict[str, Any]) -> None:
        document["load_balancer"]["weight_ramp"] = {"steps": 4, "seconds": 1}

    inventory = variant(lab, tmp_path, ramp)
    plan = confluo("plan", "-i", str(inventory), "--to", NEXT)
    assert "weight 25% → 50% → 75% → 100%" in plan.stdout, plan.stdout + plan.stderr
    result = confluo("upgrade", "-i", str(inventory), "--to", NEXT, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    socket_path = lab.record.balancer.socket  # type: ignore[union-attr]
    assert socket_path is not None
    answer = balancer.haproxy_command(socket_path, "show servers state confluence")
    rows = [line.split() for line in answer.splitlines()]
    weights = {row[3]: (row[7], row[8]) for row in rows if len(row) > 8 and row[0].isdigit()}  # uweight, iweight
    assert weights == {"node1": ("100", "100"), "node2": ("100", "100")}, "every node back at its full weight"
