"""What the user sees: the plan, the status table, and the run as it happens (rich live view on a terminal,
plain timestamped lines otherwise, JSON lines with --json), plus the log file of every remote command."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from confluo.configfiles import mask_secrets
from confluo.events import Event
from confluo.plan import Facts, Plan
from confluo.secrets import Masker
from confluo.steps import cluster_entry
from confluo.transport import CommandResult

# -- the plan ----------------------------------------------------------------------------------------------


def plan_summary(plan: Plan, facts: Facts) -> list[str]:
    """The few lines a person reads before saying yes: versions, order, each node's load and installations."""
    cluster = facts.cluster
    state = f", cluster {cluster.state.value}" if cluster else ""
    lines = [
        f"Plan: {plan.cluster_name} {plan.source_version} -> {plan.target_version}{state} "
        f"({len(plan.upgrades)} nodes, least busy first: {', '.join(plan.order)})",
    ]
    by_name = {u.node.name: u for u in plan.upgrades}
    for found in facts.nodes:
        upgrade = by_name.get(found.node)
        entry = cluster_entry(cluster, upgrade.node) if cluster and upgrade else None
        load = f"{entry.tasks} tasks, {entry.active_users} users; " if entry else ""
        target = f" -> {upgrade.paths.new_install}" if upgrade else ""
        staged = "; archive already staged" if found.staged_bytes else ""
        lines.append(f"  {found.node}: {load}{found.old_install}{target}; {found.free_mb} MB free{staged}")
    return lines


def plan_as_text(plan: Plan, facts: Facts) -> str:
    if plan.nothing_to_do:
        return f"{plan.cluster_name}: every node already runs {plan.target_version}; nothing to do.\n"
    lines = plan_summary(plan, facts)
    phase = None
    for step in plan.steps():
        if step.phase != phase:
            phase = step.phase
            lines += ["", f"== {phase}"]
        lines.append(f"-- {step.node + ': ' if step.node else ''}{step.name}")
        lines += [f"   $ {command}" for command in step.preview.commands]
        lines += [f"   wait: {wait}" for wait in step.preview.waits]
        for change in step.preview.files:
            lines.append(f"   writes {change.path}" + ("" if change.diff else " (same as shipped)"))
            lines += [f"     {line}" for line in change.diff.splitlines()]
    lines.append("")
    return "\n".join(lines)


def plan_as_json(plan: Plan, facts: Facts) -> dict[str, Any]:
    return {
        "v": 1,
        "cluster": plan.cluster_name,
        "source_version": plan.source_version,
        "target_version": plan.target_version,
        "nothing_to_do": plan.nothing_to_do,
        "order": list(plan.order),
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
        "steps": [
            {
                "phase": s.phase,
                "node": s.node,
                "step": s.name,
                "commands": list(s.preview.commands),
                "waits": list(s.preview.waits),
                "files": [{"path": c.path, "diff": c.diff} for c in s.preview.files],
            }
            for s in plan.steps()
        ],
    }


def status_table(cluster_name: str, report: dict[str, Any]) -> Table:
    mode = "on" if report["upgrade_mode"] else "off"
    table = Table(title=f"{cluster_name}: {report['state']}, upgrade mode {mode}")
    columns = {"node": "name", "state": "state", "version": "version", "on disk": "version_on_disk"}
    columns |= {"tasks": "tasks", "users": "users"}
    for title in columns:
        table.add_column(title)
    for row in report["nodes"]:
        table.add_row(*(str(row[key]) for key in columns.values()))
    return table


# -- the run as it happens ---------------------------------------------------------------------------------


class PlainLines:
    """One timestamped line per event: for cron mails and CI logs."""

    QUIET = frozenset({"waiting"})

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._last_wait: dict[str | None, str] = {}

    def __call__(self, event: Event) -> None:
        if event.kind == "waiting":
            # Only a change in what is observed is worth a line.
            if self._last_wait.get(event.node) == event.message:
                return
            self._last_wait[event.node] = event.message
        stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
        self.stream.write(f"{stamp} {event.message if event.kind != 'waiting' else _waiting(event)}\n")
        self.stream.flush()


def _waiting(event: Event) -> str:
    return f"{event.node + ': ' if event.node else ''}waiting ({event.message})"


class JsonLines:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.stream.write(json.dumps(event.as_json(), separators=(",", ":")) + "\n")
        self.stream.flush()


@dataclass
class _NodeRow:
    phase: str = "waiting"
    started: float = field(default_factory=time.monotonic)
    deadline: float | None = None
    observed: str = ""
    done: bool = False


class LiveView:
    """A table per node: phase, elapsed time, deadline, what is being waited for."""

    def __init__(self, console: Console, nodes: list[str]) -> None:
        self.console = console
        self.rows = {name: _NodeRow() for name in nodes}
        self.cluster_line = ""
        self._lock = threading.Lock()
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.update(self._render())
        self._live.__exit__(None, None, None)

    def __call__(self, event: Event) -> None:
        with self._lock:
            row = self.rows.get(event.node or "")
            if row is None:
                if event.kind != "waiting":
                    self.cluster_line = event.message
            elif event.kind == "phase_started":
                row.phase, row.started, row.observed = event.phase or "", time.monotonic(), ""
                row.deadline = event.data.get("deadline")
            elif event.kind in ("phase_done", "phase_skipped"):
                row.phase, row.deadline, row.observed = f"{event.phase}: done", None, ""
            elif event.kind == "waiting":
                row.observed = event.message
            elif event.kind == "node_done":
                row.phase, row.done, row.observed, row.deadline = "done", True, event.message, None
            self._live.update(self._render())

    def _render(self) -> Table:
        table = Table(title=self.cluster_line or "confluo", expand=False)
        for column in ("node", "phase", "elapsed", "deadline", "observed"):
            table.add_column(column)
        for name, row in self.rows.items():
            elapsed = "" if row.done else f"{time.monotonic() - row.started:.0f}s"
            deadline = f"{row.deadline:.0f}s" if row.deadline else ""
            style = "green" if row.done else None
            table.add_row(name, row.phase, elapsed, deadline, row.observed, style=style)
        return table


class CommandLog:
    """The log file: every remote command with its exit status and output, secrets masked."""

    def __init__(self, path: Path, masker: Masker) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._masker = masker
        self._lock = threading.Lock()
        self._handle = path.open("a", encoding="utf-8")
        path.chmod(0o600)

    def command(self, result: CommandResult) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        text = (
            f"{stamp} [{result.node}] $ {result.command}\n"
            f"  exit {result.exit_status} in {result.seconds:.3f} s\n"
            + "".join(f"  | {_clip(line)}\n" for line in (result.stdout + result.stderr).splitlines()[-200:])
        )
        self._write(text)

    def event(self, event: Event) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.at))
        self._write(f"{stamp} {event.kind}: {event.message}\n")

    def event_text(self, text: str) -> None:
        self._write(text if text.endswith("\n") else text + "\n")

    def _write(self, text: str) -> None:
        with self._lock:
            self._handle.write(mask_secrets(self._masker.mask(text)))
            self._handle.flush()

    def close(self) -> None:
        self._handle.close()


LOG_LINE_LIMIT = 300


def _clip(line: str) -> str:
    """Long lines are file contents in transit (base64): they may hold secrets and help nobody."""
    return line if len(line) <= LOG_LINE_LIMIT else f"{line[:80]}... ({len(line)} characters not logged)"
