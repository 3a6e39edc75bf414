"""Shared pieces of the benchmarks: labs that always come down again, running the real CLI, statistics, tables.

Not a benchmark itself; every `bench/<name>.py` imports it (they are run as `python3 bench/<name>.py`, so this
folder is on sys.path).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The confluo under test: this checkout, or a frozen copy of a commit (see bench/README.md, "A fixed commit").
SOURCE = Path(os.environ.get("CONFLUO_SOURCE") or REPO).resolve()
COMMIT_FILE = ".confluo-commit"
sys.path.insert(0, str(SOURCE))

from confluo.lab import hosts, lifecycle, model  # noqa: E402 - after the sys.path fix
from confluo.lab.node.cluster_state import cluster_view  # noqa: E402

LABS_BASE = Path("/tmp/confluo-bench-labs")
KEEP_ENV = "CONFLUO_KEEP_LABS"


# ------------------------------------------------------------------------------------------------- output


def say(message: str) -> None:
    """Progress goes to stderr, so that stdout holds only the table (or the JSON object)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def source() -> dict[str, Any]:
    """Which confluo was measured: where it was imported from, its commit, and whether it had local changes."""
    import confluo

    info: dict[str, Any] = {"path": str(Path(confluo.__file__).parent.parent)}
    if (SOURCE / COMMIT_FILE).is_file():
        info["commit"] = (SOURCE / COMMIT_FILE).read_text().strip()
        info["uncommitted_changes"] = False
        return info
    with contextlib.suppress(OSError, subprocess.SubprocessError):

        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=SOURCE, capture_output=True, text=True, check=True).stdout

        info["commit"] = git("rev-parse", "--short", "HEAD").strip()
        info["uncommitted_changes"] = bool(git("status", "--porcelain", "--", "confluo").strip())
    return info


def machine() -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {
        "confluo": source(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_1m_5m_at_end": [round(load1, 2), round(load5, 2)],
    }


def machine_line(info: dict[str, Any]) -> str:
    load = info["loadavg_1m_5m_at_end"]
    tree = info["confluo"]
    dirty = " + uncommitted changes" if tree.get("uncommitted_changes") else ""
    commit = tree.get("commit", "unknown commit") + dirty
    return (
        f"\n{info['date']}, {info['cpus']} cores, Python {info['python']}, kernel {info['kernel']}, "
        f"load average at the end {load[0]} (1 min) {load[1]} (5 min); confluo {commit} from {tree['path']}"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header], *[[fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
    return "-" if value is None else str(value)


def emit(as_json: bool, document: dict[str, Any], text: str) -> None:
    print(json.dumps(document, indent=2) if as_json else text, flush=True)


# ---------------------------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


# ------------------------------------------------------------------------------------------------- labs


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP end the benchmark like Ctrl-C does: through the `finally` that takes the labs down."""

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, leave)


def new_lab_dir(prefix: str) -> Path:
    """A fresh folder the node users can reach: /tmp/confluo-bench-labs/<unique>, mode 755."""
    LABS_BASE.mkdir(parents=True, exist_ok=True)
    LABS_BASE.chmod(0o755)
    lab_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=LABS_BASE))
    lab_dir.chmod(0o755)
    return lab_dir


@dataclass
class BenchLab:
    dir: Path
    record: model.Lab
    up_seconds: float
    extra_files: list[Path] = field(default_factory=list)

    @property
    def inventory(self) -> Path:
        return self.record.inventory

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.record.nodes]

    def view(self) -> dict[str, dict[str, Any]]:
        """The cluster database's rows by node name (what `confluo lab status` reads; no HTTP)."""
        return {row["name"]: row for row in cluster_view(self.record.db_file)["nodes"]}

    def ssh_argv(self, node: str, *command: str) -> list[str]:
        """OpenSSH with the lab's key and known_hosts, strict host key checking, no prompts."""
        target = self.record.node(node)
        return [*ssh_options(self.record, "ssh"), f"{target.user}@{target.address}", *command]


def ssh_options(record: model.Lab, program: str) -> list[str]:
    port_flag = "-P" if program == "scp" else "-p"
    return [
        program,
        "-i", str(record.client_key),
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={record.known_hosts}",
        "-o", "ConnectTimeout=10",
        "-o", "LogLevel=ERROR",
        port_flag, str(hosts.SSH_PORT),
    ]  # fmt: skip


@contextlib.contextmanager
def bench_lab(
    *,
    nodes: int,
    lb: str = "haproxy",
    db: str = "mysql",
    start_seconds: float = 2.0,
    stop_seconds: float = 1.0,
    finalize_seconds: float = 2.0,
    prefix: str = "lab-",
) -> Iterator[BenchLab]:
    """Start a lab in ssh mode and take it down (and delete its folder) however the block ends."""
    if not hosts.ssh_supported():
        raise SystemExit("these benchmarks need ssh mode: run them as root with OpenSSH's sshd installed")
    lab_dir = new_lab_dir(prefix)
    timings = model.Timings(start_seconds, stop_seconds, finalize_seconds)
    options = model.LabOptions(nodes=nodes, db=db, lb=lb, timings=timings)
    say(f"lab up: {nodes} node(s), lb {lb}, start {start_seconds} s, stop {stop_seconds} s, in {lab_dir}")
    began = time.monotonic()
    handle: BenchLab | None = None
    try:
        record = lifecycle.up(lab_dir, options)
        handle = BenchLab(lab_dir, record, time.monotonic() - began)
        addresses = [n.address for n in record.nodes]
        shown = ", ".join(addresses) if len(addresses) <= 4 else f"{addresses[0]} .. {addresses[-1]}"
        say(f"lab up in {handle.up_seconds:.1f} s: slot {record.slot}, nodes {shown}, api {record.api_url}")
        yield handle
    finally:
        try:
            if model.lab_json(lab_dir).exists():
                say(f"lab down: {lab_dir}")
                lifecycle.down(lab_dir)
        finally:
            for extra in handle.extra_files if handle else []:
                remove(extra)
            if os.environ.get(KEEP_ENV) == "1":
                say(f"{KEEP_ENV}=1: keeping {lab_dir}")
            else:
                shutil.rmtree(lab_dir, ignore_errors=True)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll every `interval` s; returns the monotonic time at which the condition was first seen true."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------------ the real CLI


def confluo_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "confluo", *args]


@dataclass
class CliRun:
    argv: list[str]
    returncode: int
    seconds: float
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # user + system time of the confluo process (not of sshd or the nodes)
    machine_busy_seconds: float = 0.0  # CPU time the whole machine spent meanwhile (every core, every process)

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.stdout.splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    found.append(event)
        return found

    def summary(self) -> dict[str, Any]:
        for event in self.events():
            if event.get("event") == "summary":
                return event
        raise RuntimeError(
            f"`{' '.join(self.argv)}` printed no summary (exit {self.returncode}):\n"
            f"{self.stderr.strip()[-2000:]}\n{self.stdout.strip()[-2000:]}"
        )


def run_confluo(*args: str, timeout: float = 3600) -> CliRun:
    """`python -m confluo ARGS` of the confluo under test, timed from spawn to exit (wall clock)."""
    argv = confluo_argv(*args)
    before, busy_before = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy()
    began = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(argv, cwd=SOURCE, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - began
    after, busy_after = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return CliRun(argv, done.returncode, seconds, done.stdout, done.stderr, cpu, busy_after - busy_before)


def machine_busy() -> float:
    """CPU seconds the machine has been busy since boot, all cores (from /proc/stat: all but idle and iowait)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def phase_seconds(events: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """From `phase_done` events: {node: {step: seconds}} (steps as confluo names them, e.g. "stop")."""
    steps: dict[str, dict[str, float]] = {}
    for event in events:
        if event.get("event") == "phase_done" and "node" in event and "seconds" in event:
            step = str(event.get("message", "")).split(": ", 1)[-1].rsplit(" (", 1)[0]
            steps.setdefault(event["node"], {})[step] = float(event["seconds"])
    return steps
