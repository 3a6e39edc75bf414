"""How `confluo plan` scales from 1 node to many: wall clock of the real CLI on a 1-node and a 20-node lab.

Both labs run at the same time; the plan runs alternate between them (1, N, 1, N, ...) so that a slow
moment of the machine hits both sides alike. Every run is the whole CLI process, from spawn to exit:
interpreter start, imports, inventory, one SSH connection per node, the probe script on every node, the
cluster API and reading the archive. As a floor, `python -m confluo --version` is timed the same way.

A 1-node plan exits 3 (refused: a rolling upgrade needs at least 2 nodes) after running every probe; it is
timed all the same, and the exit codes are reported.

    python3 bench/plan_scaling.py [--nodes 20] [--repeat 3] [--warmup 1] [--lb haproxy] [--json]

Target: median(plan, N nodes) / median(plan, 1 node) < 3.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

import benchlib
from benchlib import say

TARGET = 3.0


def probe_costs(inventory: Path, repeat: int) -> dict[str, Any]:
    """Where a plan's time goes on a node: confluo's probe script over an open SshTransport, and the part of it
    that asks sudo about each privileged command (`sudo -n -l CMD`, once per command)."""
    try:
        from confluo.inventory import load_inventory
        from confluo.layout import node_paths
        from confluo.ports import make_transport
        from confluo.probe.node import probe_command
        from confluo.transport.base import quote_argv
        from confluo.transport.remote import privileged_commands

        loaded = load_inventory(inventory)
        node = loaded.nodes[0]
        paths = node_paths(node, str(loaded.target.version), login_home="")
        probe = probe_command(node, paths, loaded.customizations)
        commands = privileged_commands(node)
        sudo_loop = 'for cmd in "$@"; do sudo -n -l "$cmd" >/dev/null 2>&1; done'
        sudo = quote_argv(["bash", "-c", sudo_loop, "sudo-checks", *commands])
        transport = make_transport(node, accept_new_host_keys=False)
    except Exception as error:  # internals of confluo; the benchmark goes on without this detail
        return {"error": f"{type(error).__name__}: {error}"}
    try:
        connect = benchlib.timed(lambda: transport.run("true"))
        costs: dict[str, Any] = {"connect_and_first_command_ms": connect * 1000, "sudo_checks": len(commands)}
        for label, line in (("true_ms", "true"), ("probe_ms", probe), ("sudo_checks_ms", sudo)):
            costs[label] = 1000 * benchlib.median(
                [benchlib.timed(lambda line=line: transport.run(line, check=False)) for _ in range(repeat)]
            )
        return costs
    finally:
        transport.close()


def probe_line(probe: dict[str, Any]) -> str:
    if "error" in probe:
        return f"probe cost on one node: not measured ({probe['error']})\n"
    return (
        f"on one node, open connection (median ms): `true` {probe['true_ms']:.1f}, the probe script "
        f"{probe['probe_ms']:.1f}, of which its {probe['sudo_checks']} `sudo -n -l` checks alone "
        f"{probe['sudo_checks_ms']:.1f}; connecting + first command {probe['connect_and_first_command_ms']:.0f}\n"
    )


def refusal(stderr: str) -> str:
    """The error message without its hint, on one line."""
    return " ".join(stderr.split()).split(" hint:")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=20, help="nodes of the big lab")
    parser.add_argument("--repeat", type=int, default=3, help="timed plan runs per lab (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed plan runs per lab first")
    parser.add_argument("--lb", default="haproxy", choices=["haproxy", "nginx", "none"])
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    args = parser.parse_args()
    benchlib.install_signal_handlers()

    with contextlib.ExitStack() as labs:
        small = labs.enter_context(benchlib.bench_lab(nodes=1, lb=args.lb, prefix="plan1-"))
        big = labs.enter_context(benchlib.bench_lab(nodes=args.nodes, lb=args.lb, prefix=f"plan{args.nodes}-"))
        sides = {"1 node": small, f"{args.nodes} nodes": big}
        slots = {
            name: {
                "slot": lab.record.slot,
                "api_url": lab.record.api_url,
                "node_addresses": [n.address for n in lab.record.nodes],
            }
            for name, lab in sides.items()
        }
        runs: dict[str, list[benchlib.CliRun]] = {name: [] for name in sides}
        for round_ in range(args.warmup + args.repeat):
            for name, lab in sides.items():
                run = benchlib.run_confluo("plan", "-i", str(lab.inventory), timeout=600)
                timed = round_ >= args.warmup
                say(
                    f"{'run' if timed else 'warm-up'} {name}: {run.seconds:.3f} s, cpu {run.cpu_seconds:.3f} s, "
                    f"exit {run.returncode}"
                )
                if run.returncode not in (0, 3):
                    raise RuntimeError(f"confluo plan on {name} exited {run.returncode}:\n{run.stderr[-2000:]}")
                if timed:
                    runs[name].append(run)
        say("timing the probe script and its sudo checks on one node")
        probe = probe_costs(small.inventory, max(5, args.repeat))
        floor = []
        for _ in range(args.repeat):
            run = benchlib.run_confluo("--version")
            floor.append(run)

    result: dict[str, Any] = {"sides": {}}
    for name, side_runs in runs.items():
        result["sides"][name] = {
            "median_seconds": benchlib.median([r.seconds for r in side_runs]),
            "all_seconds": [round(r.seconds, 3) for r in side_runs],
            "median_cpu_seconds": benchlib.median([r.cpu_seconds for r in side_runs]),
            "exit_codes": sorted({r.returncode for r in side_runs}),
            "median_machine_busy_seconds": benchlib.median([r.machine_busy_seconds for r in side_runs]),
            "refusal": next((refusal(r.stderr) for r in side_runs if r.returncode == 3), None),
            **slots[name],
        }
    one, many = (result["sides"][name]["median_seconds"] for name in sides)
    result["startup_floor_seconds"] = benchlib.median([r.seconds for r in floor])
    result["ratio"] = many / one
    result["probe_one_node"] = probe
    result["ratio_minus_startup"] = (many - result["startup_floor_seconds"]) / (one - result["startup_floor_seconds"])

    document = {
        "benchmark": "plan_scaling",
        "machine": benchlib.machine(),
        "options": vars(args),
        "target_ratio": TARGET,
        **result,
    }
    rows = []
    for name, side in result["sides"].items():
        addresses = side["node_addresses"]
        shown = addresses[0] if len(addresses) == 1 else f"{addresses[0]}..{addresses[-1]}"
        all_runs = " ".join(f"{s:.2f}" for s in side["all_seconds"])
        exits = ",".join(map(str, side["exit_codes"]))
        cpu = (side["median_cpu_seconds"], side["median_machine_busy_seconds"])
        rows.append([name, side["median_seconds"], *cpu, all_runs, exits, f"slot {side['slot']}: {shown}"])
    floor_row = ["`confluo --version`", result["startup_floor_seconds"], None, None, "", "0", "(interpreter+imports)"]
    rows.append(floor_row)
    verdict = "meets" if result["ratio"] < TARGET else "MISSES"
    text = (
        f"`confluo plan -i INVENTORY`, wall clock of the whole CLI run (s), median of {args.repeat} "
        f"(after {args.warmup} warm-up), lb {args.lb}; cpu = CPU seconds used meanwhile by confluo alone and by "
        f"the whole machine ({os.cpu_count()} cores: sshd, sudo, nodes, confluo)\n"
        + benchlib.table(["lab", "median", "cpu confluo", "cpu machine", "runs", "exit", "addresses"], rows)
        + "\n\n"
        + f"ratio {args.nodes} nodes / 1 node          {result['ratio']:.2f}  (target < {TARGET:.0f}: {verdict})\n"
        + f"ratio without the startup floor   {result['ratio_minus_startup']:.2f}\n"
        + probe_line(probe)
        + "1 node exits 3 (refused after every probe ran): "
        + (result["sides"]["1 node"]["refusal"] or "-")
        + "\n"
        + benchlib.machine_line(document["machine"])
    )
    benchlib.emit(args.json, document, text)


if __name__ == "__main__":
    main()
