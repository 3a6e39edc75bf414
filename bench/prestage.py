"""Pre-staging a big release: confluo's transfer throughput vs plain OpenSSH scp, and proof that the transfer
is not part of any node's out-of-service time.

  1. builds a --size-mb (default 700) MiB archive of the lab's next version with the real CLI,
     `confluo lab tarball VERSION --out DIR --size-mb N` (timed separately), and its sha256;
  2. starts a lab (3 nodes) and writes a copy of its inventory whose target.archive/sha256 name that archive;
  3. side by side: `scp` of the same file (OpenSSH, the lab's key and known_hosts) to one node, and to every
     node at once (--no-parallel-scp skips that);
  4. `confluo upgrade -i COPY --yes --json`: prestage_seconds, bytes_sent, aggregate MB/s, each node's
     transfer and extract step (from the events; the sha256 check on the node from the command log), the
     rolling phase and each node's out-of-service time.
Every big file (the archive, the scp copies, the lab with its staged archives) is removed at the end.

    python3 bench/prestage.py [--size-mb 700] [--nodes 3] [--json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchlib
import yaml
from benchlib import BenchLab, say

from confluo.app import make_transport
from confluo.inventory import load_inventory
from confluo.lab import model, tarball

MB = 1_000_000  # throughput in MB/s (10^6 bytes); sizes of the archive in MiB as the lab builds them
REMOTE_SCP_NAME = "confluo-bench-scp.bin"


def build_archive(version: str, out_dir: Path, size_mb: int) -> tuple[Path, float]:
    say(f"building a {size_mb} MiB archive of {version}: confluo lab tarball {version} --size-mb {size_mb}")
    run = benchlib.run_confluo("lab", "tarball", version, "--out", str(out_dir), "--size-mb", str(size_mb))
    if run.returncode != 0:
        raise RuntimeError(f"confluo lab tarball exited {run.returncode}:\n{run.stderr[-2000:]}")
    return out_dir / f"atlassian-confluence-{version}.tar.gz", run.seconds


def write_inventory(lab: BenchLab, archive: Path, sha256: str, out: Path) -> Path:
    document = yaml.safe_load(lab.inventory.read_text())
    document["target"]["archive"] = str(archive)
    document["target"]["sha256"] = sha256
    out.write_text(yaml.safe_dump(document, sort_keys=False))
    return out


def scp_to(lab: BenchLab, node: str, source: Path) -> float:
    target = lab.record.node(node)
    argv = [*benchlib.ssh_options(lab.record, "scp"), str(source), f"{target.user}@{target.address}:{REMOTE_SCP_NAME}"]
    began = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=3600)
    seconds = time.perf_counter() - began
    check = f"stat -c %s {REMOTE_SCP_NAME}; rm -f {REMOTE_SCP_NAME}"
    done = subprocess.run(lab.ssh_argv(node, check), check=True, capture_output=True, text=True, timeout=60)
    arrived(node, "scp", done.stdout, source)
    return seconds


def arrived(node: str, how: str, size_text: str, source: Path) -> None:
    if size_text.strip() != str(source.stat().st_size):
        raise RuntimeError(f"{how} to {node}: {size_text.strip()!r} bytes arrived, not {source.stat().st_size}")


def transport_upload(inventory: Path, node_name: str, source: Path) -> float:
    """confluo's own transport alone: SshTransport.upload (built as `confluo upgrade` builds it) to one node."""
    node = next(n for n in load_inventory(inventory).nodes if n.name == node_name)
    transport = make_transport(node, accept_new_host_keys=False)
    try:
        # Connect included, as in scp's time: upload() opens the connection itself.
        began = time.perf_counter()
        transport.upload(str(source), REMOTE_SCP_NAME, timeout=3600)
        seconds = time.perf_counter() - began
        done = transport.run(f"stat -c %s {REMOTE_SCP_NAME}; rm -f {REMOTE_SCP_NAME}")
        arrived(node_name, "SshTransport.upload", done.stdout, source)
    finally:
        transport.close()
    return seconds


def at_once(nodes: list[str], upload: Callable[[str], float]) -> dict[str, Any]:
    """The same upload to every node at the same time (threads): each node's time, and the slowest one's (= all
    of them, as they start together; without the size check and clean-up that follow each upload)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        per_node = list(pool.map(upload, nodes))
    return {"all_seconds": max(per_node), "per_node_seconds": per_node}


COMMAND = re.compile(r"^\S+ \S+ \[(?P<node>[^\]]+)\] \$ (?P<command>.*)$")
EXIT = re.compile(r"^  exit (?P<status>-?\d+) in (?P<seconds>[\d.]+) s$")


def verify_seconds(log: Path) -> dict[str, float]:
    """Per node, the time of the sha256 check of the uploaded .part file (a logged command; the upload is not)."""
    found: dict[str, float] = {}
    pending = None
    for line in log.read_text(errors="replace").splitlines():
        if match := COMMAND.match(line):
            command = match["command"]
            pending = match["node"] if "sha256sum -c" in command and ".part" in command else None
        elif pending and (match := EXIT.match(line)):
            found[pending] = found.get(pending, 0.0) + float(match["seconds"])
            pending = None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=700, help="archive size in MiB (padding)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--start-seconds", type=float, default=2.0, help="the lab's node start time")
    parser.add_argument("--stop-seconds", type=float, default=1.0, help="the lab's node stop time")
    parser.add_argument("--finalize-seconds", type=float, default=1.0)
    parser.add_argument("--no-parallel", action="store_true", help="skip the uploads to every node at once")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    args = parser.parse_args()
    benchlib.install_signal_handlers()

    version = model.next_bugfix(model.DEFAULT_VERSION)
    files = benchlib.new_lab_dir("prestage-files-")
    try:
        archive, build_seconds = build_archive(version, files, args.size_mb)
        size = archive.stat().st_size
        hash_began = time.perf_counter()
        sha256 = tarball.sha256_of(archive)
        hash_seconds = time.perf_counter() - hash_began
        say(f"{archive.name}: {size / MB:.1f} MB, built in {build_seconds:.1f} s, sha256 in {hash_seconds:.1f} s")
        with benchlib.bench_lab(
            nodes=args.nodes,
            start_seconds=args.start_seconds,
            stop_seconds=args.stop_seconds,
            finalize_seconds=args.finalize_seconds,
            prefix="prestage-",
        ) as lab:
            inventory = write_inventory(lab, archive, sha256, files / "inventory.yaml")
            first = lab.node_names[0]
            say(f"scp {archive.name} to {first}")
            scp_one = scp_to(lab, first, archive)
            say(f"SshTransport.upload of {archive.name} to {first}")
            transport_one = transport_upload(inventory, first, archive)
            scp_all = transport_all = None
            if not args.no_parallel:
                say(f"scp {archive.name} to all {args.nodes} nodes at once")
                scp_all = at_once(lab.node_names, lambda n: scp_to(lab, n, archive))
                say(f"SshTransport.upload of {archive.name} to all {args.nodes} nodes at once (threads)")
                transport_all = at_once(lab.node_names, lambda n: transport_upload(inventory, n, archive))
            log = files / "upgrade.log"
            say(f"confluo upgrade -i {inventory} --yes --json")
            run = benchlib.run_confluo("upgrade", "-i", str(inventory), "--yes", "--json", "--log-file", str(log))
            summary = run.summary()
            if run.returncode != 0:
                raise RuntimeError(f"confluo upgrade exited {run.returncode}:\n{run.stderr[-2000:]}")
            steps = benchlib.phase_seconds(run.events())
            verify = verify_seconds(log)
    finally:
        shutil.rmtree(files, ignore_errors=True)
        say(f"removed {files}")

    prestage = float(summary["prestage_seconds"])
    rolling = float(summary["rolling_seconds"])
    finalize = float(summary["finalize_seconds"])
    bytes_sent = int(summary["bytes_sent"])
    out_of_service = {k: float(v) for k, v in summary["out_of_service_seconds"].items()}
    nodes = {}
    for name in sorted(steps):
        transfer = steps[name].get("transfer archive")
        upload = transfer - verify.get(name, 0.0) if transfer is not None else None
        nodes[name] = {
            "transfer_step_seconds": transfer,
            "sha256_check_on_node_seconds": verify.get(name),
            "upload_seconds": upload,
            "upload_mb_per_s": size / MB / upload if upload else None,
            "extract_step_seconds": steps[name].get("extract release"),
            "out_of_service_seconds": out_of_service.get(name),
        }
    before_run = run.seconds - prestage - rolling - finalize
    document = {
        "benchmark": "prestage",
        "machine": benchlib.machine(),
        "options": vars(args),
        "archive": {"bytes": size, "build_seconds": build_seconds, "sha256_seconds_here": hash_seconds},
        "confluo": {
            "prestage_seconds": prestage,
            "rolling_seconds": rolling,
            "finalize_seconds": finalize,
            "wall_seconds": run.seconds,
            "before_the_run_seconds": before_run,
            "bytes_sent": bytes_sent,
            "aggregate_mb_per_s": bytes_sent / MB / prestage,
            "nodes": nodes,
        },
        "scp": {"one_node_seconds": scp_one, "all_nodes": scp_all},
        "ssh_transport_upload": {"one_node_seconds": transport_one, "all_nodes": transport_all},
        "lab_stop_plus_start_seconds": args.stop_seconds + args.start_seconds,
    }
    document["max_out_of_service_vs_prestage"] = max(out_of_service.values()) / prestage
    rows = [
        [name, n["transfer_step_seconds"], n["sha256_check_on_node_seconds"], n["upload_seconds"],
         n["upload_mb_per_s"], n["extract_step_seconds"], n["out_of_service_seconds"]]
        for name, n in nodes.items()
    ]  # fmt: skip
    c = document["confluo"]
    upload_rates = [n["upload_mb_per_s"] for n in nodes.values() if n["upload_mb_per_s"]]
    transfer_window = max(n["transfer_step_seconds"] or 0.0 for n in nodes.values())

    def pair(label: str, scp_seconds: float, transport_seconds: float, megabytes: float) -> list[object]:
        return [
            label, f"{scp_seconds:.2f} s", f"{megabytes / scp_seconds:.0f} MB/s", f"{transport_seconds:.2f} s",
            f"{megabytes / transport_seconds:.0f} MB/s", f"{scp_seconds / transport_seconds:.2f}",
        ]  # fmt: skip

    compare = [pair("one node alone", scp_one, transport_one, size / MB)]
    if scp_all and transport_all:
        scp_node, transport_node = (benchlib.median(x["per_node_seconds"]) for x in (scp_all, transport_all))
        compare.append(pair(f"{args.nodes} at once: each node (median)", scp_node, transport_node, size / MB))
        compare.append(
            pair(f"{args.nodes} at once: all", scp_all["all_seconds"], transport_all["all_seconds"], bytes_sent / MB)
        )
    scp_lines = (
        "OpenSSH scp vs confluo's SshTransport.upload (connecting included, same file, same key), outside the run\n"
        + benchlib.table(["", "scp", "scp rate", "SshTransport", "rate", "SshTransport speed / scp"], compare)
        + "\n"
        + f"in the upgrade: each node's upload {benchlib.median(upload_rates):.0f} MB/s (median, "
        + f"{args.nodes} at once); all transfer steps (sha256 checks included) {transfer_window:.2f} s = "
        + f"{bytes_sent / MB / transfer_window:.0f} MB/s\n"
    )
    text = (
        f"archive {size / MB:.1f} MB ({args.size_mb} MiB padding): built in {build_seconds:.1f} s "
        f"(`confluo lab tarball`), sha256 here {hash_seconds:.1f} s\n\n"
        f"confluo upgrade, {args.nodes} nodes, lab stop {args.stop_seconds} s + start {args.start_seconds} s "
        "(seconds)\n"
        + benchlib.table(
            ["node", "transfer step", "sha256 on node", "upload", "upload MB/s", "extract step", "out of service"],
            rows,
        )
        + "\n\n"
        + f"pre-stage phase                  {prestage:.2f} s  ({bytes_sent / MB:.0f} MB sent, "
        + f"{c['aggregate_mb_per_s']:.0f} MB/s aggregate)\n"
        + f"rolling phase                    {rolling:.2f} s;  finalize {finalize:.2f} s\n"
        + f"before the run (plan, probes)    {before_run:.2f} s  (confluo wall clock {run.seconds:.2f} s)\n"
        + f"max out of service / pre-stage   {document['max_out_of_service_vs_prestage']:.3f}  (out of service "
        + f"{min(out_of_service.values()):.2f}..{max(out_of_service.values()):.2f} s vs lab stop+start "
        + f"{args.stop_seconds + args.start_seconds:.1f} s)\n\n"
        + scp_lines
        + benchlib.machine_line(document["machine"])
    )
    benchlib.emit(args.json, document, text)


if __name__ == "__main__":
    main()
