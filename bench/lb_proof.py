"""Proof that users lose nothing while confluo upgrades a cluster behind a load balancer.

For each load balancer (HAProxy, nginx, Apache httpd), a fresh 3-node lab configured as production is (session
affinity, health checks on /status, no retry of a failed request on another server) is upgraded by the real
`confluo upgrade` twice: once with its `load_balancer` section (each node drained and out of the pool before its
stop, back in once it serves) and once without it (the nodes only stop gracefully; the load balancer finds out
by its health checks). All the while Locust (bench/locustfile.py: headless, loopback only, bounded in time and
in requests) runs logged-in users who keep their session cookie, read pages and create pages.

    python3 bench/lb_proof.py [--lb haproxy,nginx,apache] [--users 6] [--rate 4] [--start-seconds 3]
                              [--stop-seconds 2] [--only with|without] [--json]

Per run: requests sent, failed (HTTP >= 400 or a connection error), requests/s, p50/p99 latency, the failures
by kind; per node its time out of the pool and its drain next to its stop + start time. Target: 0 failed with
the integration, on all three.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchlib
import yaml
from benchlib import BenchLab, say

from confluo.lab import model

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
KINDS = ("haproxy", "nginx", "apache")
WARMUP_SECONDS = 3.0  # users logged in and at their rate before the upgrade begins
AFTER_SECONDS = 3.0  # and still there once it has ended: the last node must take users again
MAX_SECONDS = 1200  # Locust's own bound, whatever happens here


@dataclass
class LocustRun:
    process: subprocess.Popen[bytes]
    prefix: Path

    def stop(self) -> None:
        """SIGTERM: Locust stops its users and writes its final statistics."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def results(self) -> dict[str, Any]:
        rows = list(csv.DictReader(self.prefix.with_name(self.prefix.name + "_stats.csv").open()))
        total = next(row for row in rows if row["Name"] == "Aggregated")
        failures = list(csv.DictReader(self.prefix.with_name(self.prefix.name + "_failures.csv").open()))
        return {
            "sent": int(total["Request Count"]),
            "failed": int(total["Failure Count"]),
            "requests_per_second": float(total["Requests/s"]),
            "p50_ms": float(total["50%"]),
            "p99_ms": float(total["99%"]),
            "by_name": {row["Name"]: int(row["Request Count"]) for row in rows if row["Name"] != "Aggregated"},
            "failures": [_failure(row) for row in failures],
        }


def _failure(row: dict[str, str]) -> dict[str, Any]:
    request = f"{row['Method']} {row['Name']}"
    return {"request": request, "error": _short(row["Error"]), "count": int(row["Occurrences"])}


def _short(error: str) -> str:
    """Locust's error text → the HTTP status (`503`) or the exception's name (`ConnectionError`)."""
    status = re.search(r"\b([45]\d\d) (?:Client|Server) Error", error)
    if status:
        return status.group(1)
    name = re.match(r"(\w+)\(", error)
    return name.group(1) if name else error[:60]


@contextlib.contextmanager
def locust(url: str, auth: tuple[str, str], folder: Path, args: argparse.Namespace) -> Iterator[LocustRun]:
    prefix = folder / "locust"
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
        "-u", str(args.users), "-r", str(args.users), "-t", f"{MAX_SECONDS}s", "--stop-timeout", "10",
        "--csv", str(prefix), "--only-summary", "--exit-code-on-error", "0", "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, "PROOF_USER": auth[0], "PROOF_PASSWORD": auth[1], "PROOF_RATE": str(args.rate)}
    log = (folder / "locust.log").open("wb")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    run = LocustRun(process, prefix)
    try:
        yield run
    finally:
        run.stop()
        log.close()


def without_balancer(lab: BenchLab) -> Path:
    """The lab's inventory without its load_balancer section: confluo only stops and starts the nodes."""
    document = yaml.safe_load(lab.inventory.read_text())
    document.pop("load_balancer", None)
    for node in document["nodes"]:
        node.pop("lb_server", None)
    path = lab.dir / "inventory-without-lb.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def one_run(kind: str, integration: bool, args: argparse.Namespace) -> dict[str, Any]:
    with benchlib.bench_lab(
        nodes=3, lb=kind, start_seconds=args.start_seconds, stop_seconds=args.stop_seconds, prefix=f"proof-{kind}-"
    ) as lab:
        record = lab.record
        inventory = lab.inventory if integration else without_balancer(lab)
        with locust(record.api_url, (model.ADMIN_USER, record.admin_password), lab.dir, args) as load:
            time.sleep(WARMUP_SECONDS)
            if load.process.poll() is not None:
                raise RuntimeError(f"Locust exited {load.process.returncode}: see {lab.dir / 'locust.log'}")
            say(f"{kind}, {'with' if integration else 'without'} integration: confluo upgrade under load")
            run = benchlib.run_confluo(
                "upgrade", "-i", str(inventory), "--to", record.next_version, "--yes", "--json",
                "--log-file", str(lab.dir / "confluo.log"),
            )  # fmt: skip
            time.sleep(AFTER_SECONDS)
        if run.returncode != 0:
            raise RuntimeError(f"confluo upgrade exited {run.returncode}:\n{run.stderr[-2000:]}")
        summary = run.summary()
        results = load.results()
    nodes = {
        node: {
            "stop_start": summary["stop_seconds"][node] + summary["start_seconds"][node],
            "out_of_service": seconds,
            "out_of_pool": summary.get("out_of_pool_seconds", {}).get(node),
            "drain": summary.get("drain_seconds", {}).get(node),
        }
        for node, seconds in summary["out_of_service_seconds"].items()
    }
    say(f"  {results['sent']} requests, {results['failed']} failed, {results['requests_per_second']:.1f}/s")
    return {"lb": kind, "integration": integration, "upgrade_seconds": run.seconds, **results, "nodes": nodes}


def render(runs: list[dict[str, Any]]) -> str:
    def label(run: dict[str, Any]) -> str:
        return f"{run['lb']} {'with' if run['integration'] else 'without'}"

    header = ["load balancer, integration", "sent", "failed", "req/s", "p50 ms", "p99 ms", "upgrade s", "failures"]
    rows = [
        [label(r), r["sent"], r["failed"], r["requests_per_second"], r["p50_ms"], r["p99_ms"], r["upgrade_seconds"],
         ", ".join(f"{f['request']} {f['error']} ×{f['count']}" for f in r["failures"]) or "-"]
        for r in runs
    ]  # fmt: skip
    node_header = ["load balancer, integration", "node", "out of pool", "drain", "out of service", "stop + start"]
    node_rows = [
        [label(r), node, n["out_of_pool"] if n["out_of_pool"] is not None else "-",
         n["drain"] if n["drain"] is not None else "-", n["out_of_service"], n["stop_start"]]
        for r in runs for node, n in r["nodes"].items()
    ]  # fmt: skip
    with_integration = [r for r in runs if r["integration"]]
    verdict = "meets" if with_integration and all(r["failed"] == 0 for r in with_integration) else "MISSES"
    return (
        benchlib.table(header, rows)
        + "\n\n"
        + benchlib.table(node_header, node_rows)
        + f"\n\ntarget: 0 failed with the integration on every load balancer: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lb", default=",".join(KINDS), help="comma-separated: haproxy, nginx, apache")
    parser.add_argument("--users", type=int, default=6, help="Locust users, each logged in with its own session")
    parser.add_argument("--rate", type=float, default=4.0, help="requests per second per user")
    parser.add_argument("--start-seconds", type=float, default=3.0, help="the lab's node start time")
    parser.add_argument("--stop-seconds", type=float, default=2.0, help="the lab's node stop time")
    parser.add_argument("--only", choices=["with", "without"], help="only the runs with (or without) integration")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the tables")
    args = parser.parse_args()
    kinds = [kind for kind in args.lb.split(",") if kind]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"--lb: unknown {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")
    benchlib.install_signal_handlers()
    modes = {"with": [True], "without": [False], None: [True, False]}[args.only]
    runs = [one_run(kind, integration, args) for kind in kinds for integration in modes]
    document = {
        "benchmark": "lb_proof",
        "machine": benchlib.machine(),
        "options": vars(args),
        "runs": runs,
    }
    benchlib.emit(args.json, document, render(runs) + "\n" + benchlib.machine_line(document["machine"]))


if __name__ == "__main__":
    main()
