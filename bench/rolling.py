"""How close confluo's rolling phase comes to the nodes' own stop + start time.

On one lab (3 nodes by default) it first measures, by hand, each node's own stop and start: the lab's stop
script, then polling the cluster database every --poll s until the node is OFFLINE (and until its process
has exited, which the start script needs); the lab's start script, then polling until the node is ACTIVE.
Then it runs the real `confluo upgrade -i INVENTORY --yes --json` and reads rolling_seconds and
out_of_service_seconds from its summary, and each step's time from its events and log file.

    python3 bench/rolling.py [--nodes 3] [--start-seconds 5] [--stop-seconds 2] [--runs 1] [--json]

Target: rolling phase / sum of own stop+start <= 1.10. The rolling phase in confluo's summary includes enabling
upgrade mode; finalize is reported separately and is not part of the ratio.
"""

from __future__ import annotations

import argparse
import itertools
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import benchlib
from benchlib import BenchLab, say

from confluo.lab import control, hosts

TARGET = 1.10


def own_stop_start(lab: BenchLab, node: str, poll: float, timeout: float) -> dict[str, float]:
    """One node stopped and started by hand, timed from running the script to the state in the cluster."""
    pid = lab.view()[node]["pid"]
    began = time.monotonic()
    control.stop(lab.dir, node)
    offline_at = benchlib.wait_for(lambda: lab.view()[node]["state"] == "OFFLINE", timeout, f"{node} OFFLINE", poll)
    exited_at = benchlib.wait_for(lambda: not hosts.pid_alive(pid), timeout, f"{node}'s process to exit", poll)
    began_start = time.monotonic()
    control.start(lab.dir, node)
    active_at = benchlib.wait_for(lambda: lab.view()[node]["state"] == "ACTIVE", timeout, f"{node} ACTIVE", poll)
    return {
        "stop": offline_at - began,
        "stop_until_exit": exited_at - began,
        "start": active_at - began_start,
    }


def measure_own(lab: BenchLab, repeat: int, poll: float, timeout: float) -> dict[str, dict[str, float]]:
    samples: dict[str, list[dict[str, float]]] = defaultdict(list)
    for round_ in range(repeat):
        for node in lab.node_names:
            sample = own_stop_start(lab, node, poll, timeout)
            samples[node].append(sample)
            say(
                f"own #{round_ + 1} {node}: stop {sample['stop']:.3f} s (exit {sample['stop_until_exit']:.3f} s), "
                f"start {sample['start']:.3f} s"
            )
    own = {}
    for node, runs in samples.items():
        own[node] = {key: benchlib.median([r[key] for r in runs]) for key in runs[0]}
        own[node]["stop_start"] = own[node]["stop"] + own[node]["start"]
    return own


def rolling_breakdown(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the rolling phase went, from the events' wall-clock stamps (ms resolution)."""
    at: dict[tuple[str, str | None, str | None], float] = {}
    for event in events:
        key = (event["event"], event.get("node"), event.get("phase"))
        at.setdefault(key, event.get("at", 0.0))
    upgrade_mode = None
    if ("phase_done", None, "upgrade mode") in at:
        upgrade_mode = at[("phase_done", None, "upgrade mode")] - at[("phase_started", None, "upgrade mode")]
    nodes = {}
    for event in events:
        if event["event"] == "node_started":
            nodes[event["node"]] = {"started": event["at"]}
        elif event["event"] == "node_done":
            nodes[event["node"]]["done"] = event["at"]
    order = sorted(nodes, key=lambda n: nodes[n]["started"])
    between = [nodes[b]["started"] - nodes[a]["done"] for a, b in itertools.pairwise(order)]
    return {
        "upgrade_mode_seconds": upgrade_mode,
        "order": order,
        "node_seconds": {n: nodes[n]["done"] - nodes[n]["started"] for n in order},
        "between_nodes_seconds": between,
    }


EXIT = re.compile(r"^  exit (?P<status>-?\d+) in (?P<seconds>[\d.]+) s$")
NODE_STARTED = re.compile(r"^\S+ \S+ node_started: (?P<node>\S+): upgrading")
NODE_DONE = re.compile(r"^\S+ \S+ node_done: ")


def remote_commands(log: Path) -> dict[str, dict[str, float]]:
    """Per node, the SSH commands confluo ran while upgrading it (rolling is serial): count and total time."""
    found: dict[str, dict[str, float]] = {}
    current = None
    for line in log.read_text(errors="replace").splitlines():
        if match := NODE_STARTED.match(line):
            current = match["node"]
            found[current] = {"commands": 0, "seconds": 0.0}
        elif NODE_DONE.match(line):
            current = None
        elif current is not None and (match := EXIT.match(line)):
            found[current]["commands"] += 1
            found[current]["seconds"] += float(match["seconds"])
    return found


def one_run(args: argparse.Namespace, number: int) -> dict[str, Any]:
    with benchlib.bench_lab(
        nodes=args.nodes,
        lb=args.lb,
        start_seconds=args.start_seconds,
        stop_seconds=args.stop_seconds,
        finalize_seconds=args.finalize_seconds,
        prefix="rolling-",
    ) as lab:
        timeout = 4 * (args.start_seconds + args.stop_seconds) + 30
        own = measure_own(lab, args.own_repeat, args.poll, timeout)
        log = lab.dir / "upgrade.log"
        say(f"run {number}: confluo upgrade -i {lab.inventory} --yes --json")
        run = benchlib.run_confluo("upgrade", "-i", str(lab.inventory), "--yes", "--json", "--log-file", str(log))
        summary = run.summary()
        if run.returncode != 0:
            raise RuntimeError(f"confluo upgrade exited {run.returncode}:\n{run.stderr[-2000:]}")
        events = run.events()
        steps = benchlib.phase_seconds(events)
        commands = remote_commands(log)
    sum_own = sum(o["stop_start"] for o in own.values())
    rolling = float(summary["rolling_seconds"])
    out_of_service = {k: float(v) for k, v in summary["out_of_service_seconds"].items()}
    nodes = {}
    for name in own:
        node_steps = steps.get(name, {})
        nodes[name] = {
            "own_stop": own[name]["stop"],
            "own_stop_until_exit": own[name]["stop_until_exit"],
            "own_start": own[name]["start"],
            "own_stop_start": own[name]["stop_start"],
            "confluo_stop_step": node_steps.get("stop"),
            "confluo_start_step": node_steps.get("start"),
            "confluo_other_steps": sum(v for k, v in node_steps.items() if k not in ("stop", "start")),
            "out_of_service": out_of_service.get(name),
            "out_of_service_ratio": out_of_service[name] / own[name]["stop_start"] if name in out_of_service else None,
            "ssh_commands": commands.get(name, {}).get("commands"),
            "ssh_command_seconds": commands.get(name, {}).get("seconds"),
        }
    return {
        "run": number,
        "wall_seconds": run.seconds,
        "prestage_seconds": float(summary["prestage_seconds"]),
        "rolling_seconds": rolling,
        "finalize_seconds": float(summary["finalize_seconds"]),
        "sum_own_stop_start": sum_own,
        "ratio": rolling / sum_own,
        "breakdown": rolling_breakdown(events),
        "nodes": nodes,
    }


def render(args: argparse.Namespace, runs: list[dict[str, Any]]) -> str:
    parts = []
    for result in runs:
        header = [
            "node", "own stop", "(exit)", "own start", "own stop+start",
            "confluo stop", "confluo start", "other steps", "out of service", "oos / own", "ssh cmds", "ssh cmd s",
        ]  # fmt: skip
        keys = (
            "own_stop", "own_stop_until_exit", "own_start", "own_stop_start", "confluo_stop_step",
            "confluo_start_step", "confluo_other_steps", "out_of_service", "out_of_service_ratio",
            "ssh_commands", "ssh_command_seconds",
        )  # fmt: skip
        rows = [[name, *(n[key] for key in keys)] for name, n in result["nodes"].items()]
        b = result["breakdown"]
        verdict = "meets" if result["ratio"] <= TARGET else "MISSES"
        parts.append(
            f"run {result['run']}: {args.nodes} nodes, lab start {args.start_seconds} s / stop {args.stop_seconds} s "
            f"(seconds; own = by hand, polled every {args.poll} s)\n"
            + benchlib.table(header, rows)
            + "\n\n"
            + f"rolling phase (confluo)      {result['rolling_seconds']:.2f} s\n"
            + f"sum of own stop+start        {result['sum_own_stop_start']:.2f} s\n"
            + f"ratio rolling / own          {result['ratio']:.3f}  (target <= {TARGET:.2f}: {verdict})\n"
            + f"  of which upgrade mode on   {b['upgrade_mode_seconds'] or 0:.2f} s\n"
            + f"  per node (started->done)   {', '.join(f'{k} {v:.2f}' for k, v in b['node_seconds'].items())}\n"
            + f"  between nodes              {', '.join(f'{v:.3f}' for v in b['between_nodes_seconds'])}\n"
            + f"pre-stage {result['prestage_seconds']:.2f} s, finalize {result['finalize_seconds']:.2f} s, "
            + f"confluo wall clock {result['wall_seconds']:.2f} s"
        )
    if len(runs) > 1:
        ratios = [r["ratio"] for r in runs]
        parts.append(
            f"median ratio over {len(runs)} runs: {benchlib.median(ratios):.3f} (all: "
            + ", ".join(f"{r:.3f}" for r in ratios)
            + ")"
        )
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--start-seconds", type=float, default=5.0, help="the lab's node start time")
    parser.add_argument("--stop-seconds", type=float, default=2.0, help="the lab's node stop time")
    parser.add_argument("--finalize-seconds", type=float, default=1.0)
    parser.add_argument("--lb", default="haproxy", choices=["haproxy", "nginx", "none"])
    parser.add_argument("--own-repeat", type=int, default=1, help="stop+start each node N times by hand (median)")
    parser.add_argument("--runs", type=int, default=1, help="fresh lab + upgrade N times")
    parser.add_argument("--poll", type=float, default=0.05, help="poll interval of the hand measurement")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    args = parser.parse_args()
    benchlib.install_signal_handlers()
    runs = [one_run(args, number) for number in range(1, args.runs + 1)]
    document = {
        "benchmark": "rolling",
        "machine": benchlib.machine(),
        "options": vars(args),
        "target_ratio": TARGET,
        "median_ratio": benchlib.median([r["ratio"] for r in runs]),
        "runs": runs,
    }
    benchlib.emit(args.json, document, render(args, runs) + "\n" + benchlib.machine_line(document["machine"]))


if __name__ == "__main__":
    main()
