"""The plan as a person reads it before saying yes, as text and as JSON, and the status table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from confluo.api.base import cluster_entry
from confluo.inventory import Node
from confluo.loadbalancer.base import ServerState
from confluo.plan.model import Plan
from confluo.probe.facts import Facts
from confluo.steps.base import FileChange, Step


def plan_summary(plan: Plan, facts: Facts, nodes: Sequence[Node]) -> list[str]:
    """The few lines a person reads before saying yes: versions, order, each node's load and installations."""
    cluster = facts.cluster
    state = f", cluster {cluster.state.value}" if cluster else ""
    lines = [
        f"Plan: {plan.cluster_name} {plan.source_version} -> {plan.target_version}{state} "
        f"({len(plan.nodes)} nodes, least busy first: {', '.join(plan.order)})",
    ]
    by_name = {node.name: node for node in nodes}
    for found in facts.nodes:
        node = by_name.get(found.node)
        entry = cluster_entry(cluster, node) if cluster and node else None
        load = f"{entry.tasks} tasks, {entry.active_users} users; " if entry else ""
        new_install = plan.new_installs.get(found.node)
        target = f" -> {new_install}" if new_install else ""
        staged = "; archive already staged" if found.staged_bytes else ""
        lines.append(f"  {found.node}: {load}{found.old_install}{target}; {found.free_mb} MB free{staged}")
    lines += [f"  note: {note}" for note in plan.notes]
    return lines + _balancer_lines(facts)


def _balancer_lines(facts: Facts) -> list[str]:
    balancer = facts.balancer
    if balancer is None:
        return []
    states = ", ".join(f"{name} {_lb_state(state)}" for name, state in balancer.states.items())
    return [f"  load balancer ({balancer.kind}): {states}"]  # its warnings are among the plan's notes


def _lb_state(state: ServerState) -> str:
    health = {True: "UP", False: "DOWN", None: ""}[state.healthy]
    return " ".join(part for part in (state.admin.value, health) if part)


def plan_as_text(plan: Plan, facts: Facts, nodes: Sequence[Node]) -> str:
    if plan.nothing_to_do:
        return f"{plan.cluster_name}: every node already runs {plan.target_version}; nothing to do.\n"
    if plan.goal != "upgrade":  # what is left of an upgrade is its finalization
        return recovery_plan_as_text(plan)
    lines = plan_summary(plan, facts, nodes) + _step_lines(plan) + _rollback_lines(plan)
    lines.append("")
    return "\n".join(lines)


def recovery_plan_as_text(plan: Plan) -> str:
    """A rollback, cancel or finalize: what it will do, step by step."""
    if plan.nothing_to_do:
        return f"{plan.cluster_name}: the cluster is STABLE and upgrade mode is off; nothing to do.\n"
    lines = [f"Plan: {plan.goal} {plan.cluster_name} ({plan.source_version} -> {plan.target_version})"]
    lines += [f"  note: {note}" for note in plan.notes]
    return "\n".join([*lines, *_step_lines(plan), ""])


def recovery_plan_as_json(plan: Plan) -> dict[str, Any]:
    return {
        "v": 1,
        "goal": plan.goal,
        "cluster": plan.cluster_name,
        "source_version": plan.source_version,
        "target_version": plan.target_version,
        "nothing_to_do": plan.nothing_to_do,
        "notes": list(plan.notes),
        "steps": _steps_as_json(plan),
    }


def _step_lines(plan: Plan) -> list[str]:
    lines: list[str] = []
    phase = None
    for step in plan.steps():
        if step.phase != phase:
            phase = step.phase
            lines += ["", f"== {phase}"]
        lines.append(f"-- {step.node + ': ' if step.node else ''}{step.name}")
        lines += [f"   $ {command}" for command in step.preview.commands]
        lines += [f"   wait: {wait}" for wait in step.preview.waits]
        for change in step.preview.files:
            lines += _file_lines(change)
    return lines


def _file_lines(change: FileChange) -> list[str]:
    """A file a step writes: for a carried file its summary, your changes, the release's, then the result."""
    if not change.summary:
        head = f"   writes {change.path}" + ("" if change.diff else " (same as shipped)")
        return [head, *(f"     {line}" for line in change.diff.splitlines())]
    lines = [f"   {change.summary}"]
    for title, diff in change.parts:
        lines.append(f"     {title}:" + ("" if diff else " none"))
        lines += [f"       {line}" for line in diff.splitlines()]
    if change.diff:
        lines.append(f"     result, written to {change.path}:")
        lines += [f"       {line}" for line in change.diff.splitlines()]
    return lines


def _rollback_lines(plan: Plan) -> list[str]:
    """What confluo does when a node fails or the run is interrupted while it upgrades that node."""
    lines = ["", f"== if a node fails or the run is interrupted: that node goes back to {plan.source_version}"]
    for work in plan.rolling:
        if work.rollback:
            lines.append(f"-- {work.node}: " + " -> ".join(_step_line(step) for step in work.rollback))
    lines.append("-- then, if no node runs the new version: upgrade mode off (POST /rest/zdu/cancel)")
    return lines


def _step_line(step: Step) -> str:
    commands = step.describe().commands
    return f"{step.name} ({commands[-1]})" if commands else step.name


def plan_as_json(plan: Plan, facts: Facts) -> dict[str, Any]:
    return {
        "v": 1,
        "cluster": plan.cluster_name,
        "source_version": plan.source_version,
        "target_version": plan.target_version,
        "nothing_to_do": plan.nothing_to_do,
        "order": list(plan.order),
        "notes": list(plan.notes),
        "nodes": [
            {
                "name": f.node,
                "installed_version": f.installed_version,
                "install_dir": f.old_install,
                "free_mb": f.free_mb,
                "archive_staged": bool(f.staged_bytes),
            }
            for f in facts.nodes
        ],
        "steps": _steps_as_json(plan),
        "rollback": {
            work.node: [{"step": s.name, "commands": list(s.describe().commands)} for s in work.rollback]
            for work in plan.rolling
        },
        "load_balancer": _balancer_json(facts),
    }


def _balancer_json(facts: Facts) -> dict[str, Any] | None:
    balancer = facts.balancer
    if balancer is None:
        return None
    return {
        "kind": balancer.kind,
        "servers": {
            name: {"server": st.server, "admin": st.admin.value, "healthy": st.healthy, "sessions": st.sessions}
            for name, st in balancer.states.items()
        },
        "warnings": list(balancer.warnings),
    }


def _steps_as_json(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "phase": s.phase,
            "node": s.node,
            "step": s.name,
            "commands": list(s.preview.commands),
            "waits": list(s.preview.waits),
            "files": [_file_json(change) for change in s.preview.files],
        }
        for s in plan.steps()
    ]


def _file_json(change: FileChange) -> dict[str, Any]:
    record: dict[str, Any] = {"path": change.path, "diff": change.diff}
    if change.summary:
        record["summary"] = change.summary
        record["parts"] = [{"title": title, "diff": diff} for title, diff in change.parts]
    return record


def status_table(cluster_name: str, report: dict[str, Any]) -> Table:
    mode = "on" if report["upgrade_mode"] else "off"
    table = Table(title=f"{cluster_name}: {report['state']}, upgrade mode {mode}")
    columns = {"node": "name", "state": "state", "version": "version", "on disk": "version_on_disk"}
    columns |= {"tasks": "tasks", "users": "users"}
    if any("lb" in row for row in report["nodes"]):
        columns["load balancer"] = "lb"
    for title in columns:
        table.add_column(title)
    for row in report["nodes"]:
        table.add_row(*(str(row.get(key, "-")) for key in columns.values()))
    captions = [f"{row['name']}: {error}" for row in report["nodes"] for error in row.get("finalization_errors", ())]
    if report.get("next"):
        captions.append(f"to continue once the cause is fixed: {report['next']}")
    run = report.get("unfinished_run")
    if run:
        captions.append(
            f"an upgrade {run['source_version']} -> {run['target_version']} started {run['started_at']} on "
            f"{run['host']} did not finish; to continue: {run['next']}; or to go back: {run['back']}"
        )
    lock = report.get("cluster_lock")
    if lock and (lock.get("held") or "error" in lock):
        text = lock.get("description") or f"cannot be read: {lock.get('error')}"
        captions.append(f"cluster lock: {text}" if "error" in lock else f"cluster lock held by {text}")
    if captions:
        table.caption = "\n".join(captions)
    return table
