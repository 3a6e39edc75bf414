"""What one remote command costs confluo: SshTransport on an open connection, vs fresh OpenSSH processes,
vs LocalTransport as the floor; and what opening a connection costs.

On a 1-node lab (no load balancer), in this process:
  - SshTransport built from the lab's inventory exactly as `confluo.ports.make_transport` builds it;
    --connects fresh transports each time the first `run("true")` (= connect + handshake + auth + command)
    and a second one, then closed;
  - N (--count, default 200) `run("true")` calls on one open connection (after --warmup calls);
  - N/10 fresh `ssh -i KEY -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=... USER@HOST true`;
  - N `LocalTransport.run("true")` (bash -c true as a subprocess): the floor of any command.

    python3 bench/ssh_overhead.py [--count 200] [--connects 5] [--json]
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Callable
from typing import Any

import benchlib
from benchlib import say

from confluo.inventory import load_inventory
from confluo.ports import make_transport
from confluo.transport.local import LocalTransport
from confluo.transport.ssh import SshTransport


def sample(action: Callable[[], object], count: int) -> list[float]:
    return [benchlib.timed(action) for _ in range(count)]


def stats(seconds: list[float]) -> dict[str, Any]:
    return {
        "n": len(seconds),
        "median_ms": benchlib.median(seconds) * 1000,
        "p90_ms": benchlib.percentile(seconds, 90) * 1000,
        "min_ms": min(seconds) * 1000,
        "max_ms": max(seconds) * 1000,
    }


def checked(result: Any) -> None:
    if not result.ok:
        raise RuntimeError(f"`{result.command}` exited {result.exit_status}: {result.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="commands on the open connection (and local)")
    parser.add_argument("--fresh", type=int, default=None, help="fresh OpenSSH processes (default count/10)")
    parser.add_argument("--connects", type=int, default=5, help="fresh SshTransport connections to time")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    args = parser.parse_args()
    fresh_count = args.fresh if args.fresh is not None else max(1, args.count // 10)
    benchlib.install_signal_handlers()

    with benchlib.bench_lab(nodes=1, lb="none", prefix="ssh-") as lab:
        node = load_inventory(lab.inventory).nodes[0]

        def new_transport() -> SshTransport:
            transport = make_transport(node, accept_new_host_keys=False)
            assert isinstance(transport, SshTransport), type(transport)
            return transport

        say(f"{args.connects} fresh SshTransport connections to {node.ssh.user}@{node.host}")
        first_runs, second_runs = [], []
        for _ in range(args.connects):
            transport = new_transport()
            try:
                first_runs.append(benchlib.timed(lambda t=transport: checked(t.run("true"))))
                second_runs.append(benchlib.timed(lambda t=transport: checked(t.run("true"))))
            finally:
                transport.close()

        say(f"{args.count} SshTransport.run('true') on one open connection")
        transport = new_transport()
        try:
            for _ in range(args.warmup):
                checked(transport.run("true"))
            persistent = sample(lambda: checked(transport.run("true")), args.count)
        finally:
            transport.close()

        say(f"{fresh_count} fresh OpenSSH processes")
        argv = lab.ssh_argv(node.name, "true")

        def openssh() -> None:
            subprocess.run(argv, check=True, capture_output=True, timeout=30)

        for _ in range(min(args.warmup, 2)):
            openssh()
        fresh = sample(openssh, fresh_count)

        say(f"{args.count} LocalTransport.run('true')")
        local = LocalTransport("local")
        for _ in range(args.warmup):
            checked(local.run("true"))
        local_runs = sample(lambda: checked(local.run("true")), args.count)
        address = node.host

    results = {
        "ssh_transport_open_connection": stats(persistent),
        "openssh_fresh_process": stats(fresh),
        "local_transport": stats(local_runs),
        "ssh_transport_first_run": stats(first_runs),
        "ssh_transport_second_run": stats(second_runs),
    }
    connect_ms = [(a - b) * 1000 for a, b in zip(first_runs, second_runs, strict=True)]
    open_ms = results["ssh_transport_open_connection"]["median_ms"]
    ratios = {
        "open_connection_vs_local": open_ms / results["local_transport"]["median_ms"],
        "fresh_openssh_vs_open_connection": results["openssh_fresh_process"]["median_ms"] / open_ms,
        "first_run_vs_open_connection": results["ssh_transport_first_run"]["median_ms"] / open_ms,
    }
    document = {
        "benchmark": "ssh_overhead",
        "machine": benchlib.machine(),
        "options": vars(args),
        "node": address,
        "results": results,
        "connect_only_median_ms": benchlib.median(connect_ms),
        "ratios": ratios,
    }
    labels = {
        "local_transport": "LocalTransport.run('true') (floor)",
        "ssh_transport_open_connection": "SshTransport.run('true'), open connection",
        "openssh_fresh_process": "fresh `ssh ... true` process (OpenSSH)",
        "ssh_transport_first_run": "SshTransport first run (connect + command)",
        "ssh_transport_second_run": "  ... its second run",
    }
    rows = [
        [labels[key], results[key]["n"], results[key]["median_ms"], results[key]["p90_ms"], results[key]["min_ms"],
         results[key]["max_ms"]]
        for key in labels
    ]  # fmt: skip
    text = (
        f"per-command latency to one lab node ({address}), ms\n"
        + benchlib.table(["what", "n", "median", "p90", "min", "max"], rows)
        + "\n\n"
        + f"open connection / local               {ratios['open_connection_vs_local']:.2f}x\n"
        + f"fresh OpenSSH process / open conn.     {ratios['fresh_openssh_vs_open_connection']:.1f}x\n"
        + f"first run (connect) / open conn.      {ratios['first_run_vs_open_connection']:.1f}x\n"
        + f"connect alone (first - second run)    {document['connect_only_median_ms']:.1f} ms (median)\n"
        + benchlib.machine_line(document["machine"])
    )
    benchlib.emit(args.json, document, text)


if __name__ == "__main__":
    main()
