"""The lab's node processes: started and stopped with the installation's own scripts, as the node's user,
found by pid (checked against their command line, as pids get reused), and waited for until ACTIVE."""

from __future__ import annotations

import contextlib
import pwd
import subprocess
import time
from pathlib import Path
from typing import Any

from confluo.lab import hosts, tarball
from confluo.lab.hosts import LabError
from confluo.lab.model import Lab, Node
from confluo.lab.node.cluster_state import cluster_view

# The node processes' environment in ssh mode: what a fresh login would have, not root's.
NODE_PATH = "/usr/local/bin:/usr/bin:/bin"
NODE_MARKER = Path(tarball.NODE_PROGRAM).name  # on the command line of every node process


def as_lab_user(user: str | None, argv: list[str]) -> list[str]:
    """`argv` as the lab's user `user` would run it after a fresh login (None, in local mode: as it is)."""
    if user is None:
        return argv
    home = pwd.getpwnam(user).pw_dir
    environment = [
        f"PATH={NODE_PATH}",
        f"HOME={home}",
        f"USER={user}",
        f"LOGNAME={user}",
        "LANG=C.UTF-8",
    ]
    return ["runuser", "-u", user, "--", "env", "-i", *environment, *argv]


def _run_script(node: Node, script: str) -> None:
    path = node.current / "bin" / script
    # Its own session: the node must not get the caller's Ctrl-C or die with its terminal.
    done = subprocess.run(
        as_lab_user(node.user, [str(path)]),
        cwd=node.current,
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,
        check=False,
    )
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise LabError(f"{path} failed on {node.name} with exit code {done.returncode}: {output}")


def start_node(node: Node) -> int | None:
    """Start the node's current installation with its start script, as its user; returns its pid."""
    _run_script(node, "start-confluence.sh")
    pid = hosts.read_pid(node.current / "work" / "catalina.pid")
    if pid is not None:
        node.pid_record.write_text(f"{pid}\n")
    return pid


def stop_node(node: Node) -> None:
    """Ask the node to stop (SIGTERM via its stop script); it takes stop_seconds to go OFFLINE."""
    _run_script(node, "stop-confluence.sh")


def _is_node_process(lab: Lab, pid: int | None) -> bool:
    return hosts.runs(pid, NODE_MARKER) and hosts.runs(pid, str(lab.dir / "hosts"))


def node_process_pids(lab: Lab) -> set[int]:
    """Every node process of the lab, of every installation (confluo may have started a new one)."""
    candidates = {hosts.read_pid(p) for p in lab.dir.glob("hosts/*/opt/atlassian/confluence/*/work/catalina.pid")}
    candidates |= {hosts.read_pid(p) for p in (lab.dir / "run").glob("*.pid")}
    with contextlib.suppress(Exception):
        candidates |= {row.get("pid") for row in cluster_view(lab.db_file)["nodes"]}
    return {pid for pid in candidates if pid is not None and _is_node_process(lab, pid)}


def node_pids(lab: Lab, node: Node) -> set[int]:
    """The node's live processes: the one its cluster row names and the ones its pid files name."""
    candidates = {hosts.read_pid(p) for p in node.install_base.glob("*/work/catalina.pid")}
    candidates.add(nodes_by_name(lab).get(node.name, {}).get("pid"))
    candidates.add(hosts.read_pid(node.pid_record))
    return {pid for pid in candidates if pid is not None and _is_node_process(lab, pid)}


def nodes_by_name(lab: Lab) -> dict[str, dict[str, Any]]:
    """The cluster database's node rows by name; {} while the database cannot be read."""
    try:
        view = cluster_view(lab.db_file)
    except Exception:
        return {}
    return {row["name"]: row for row in view["nodes"]}


def wait_until_active(lab: Lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        view = nodes_by_name(lab)
        states = {n.name: view.get(n.name, {}).get("state", "ABSENT") for n in lab.nodes}
        if all(state == "ACTIVE" for state in states.values()):
            return
        failed = {n: s for n, s in states.items() if s == "ERROR"}
        if failed or time.monotonic() > deadline:
            raise LabError(_not_active_message(lab, states, view))
        time.sleep(0.1)


def _not_active_message(lab: Lab, states: dict[str, str], view: dict[str, dict[str, Any]]) -> str:
    lines = [f"the nodes did not all become ACTIVE: {states}"]
    strangers = sorted(set(view) - lab.node_names)
    if strangers:
        lines.append(f"  the cluster also lists: {', '.join(strangers)}")
    for node in lab.nodes:
        if states[node.name] != "ACTIVE":
            problem = view.get(node.name, {}).get("problem") or "no problem reported"
            log = node.current / "logs" / "catalina.out"
            lines.append(f"  {node.name}: {problem}; its log {log} ends with:")
            lines.extend(f"    | {line}" for line in _tail(log, 8))
    return "\n".join(lines)


def _tail(path: Path, count: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-count:]
    except OSError as error:
        return [f"(cannot read it: {error.strerror})"]
