"""Disturbing a running lab, one node at a time: its load, its faults, and stopping or starting it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from confluo.lab import hosts
from confluo.lab import synchrony as synchrony_hosts
from confluo.lab.hosts import LabError
from confluo.lab.model import Lab, Node, load
from confluo.lab.node.clusterdb import set_fault, set_node_load
from confluo.lab.node.states import FAULT_KINDS
from confluo.lab.node_processes import node_pids, start_node, stop_node

# Faults the lab injects itself; the node program's own kinds come from its FAULT_KINDS.
CRASH = "crash"
SSH_DOWN = "ssh-down"
CLEAR = "clear"
LAB_FAULT_KINDS = (CRASH, SSH_DOWN)


def set_load(lab_dir: Path, node_name: str, *, tasks: int | None = None, users: int | None = None) -> None:
    lab = load(lab_dir)
    lab.node(node_name)
    for label, value in (("tasks", tasks), ("users", users)):
        if value is not None and value < 0:
            raise LabError(f"--{label} must not be negative, not {value}")
    set_node_load(lab.db_file, node_name, tasks=tasks, users=users)


def fault_kinds() -> tuple[str, ...]:
    """The node program's faults plus the lab's own (crash, ssh-down), without repeats."""
    return tuple(dict.fromkeys((*FAULT_KINDS, *LAB_FAULT_KINDS)))


def fault(lab_dir: Path, node_name: str, kind: str) -> str:
    """Inject `kind` into a node or a Synchrony host (or `clear` its fault); returns a sentence saying what was done."""
    lab = load(lab_dir)
    if (synchrony := lab.synchrony_host(node_name)) is not None:
        return synchrony_hosts.clear(lab, synchrony) if kind == CLEAR else synchrony_hosts.fault(lab, synchrony, kind)
    node = lab.node(node_name)
    if kind == CLEAR:
        return _clear(lab, node)
    if kind not in fault_kinds():
        raise LabError(f"unknown fault kind {kind!r}; choose one of {', '.join((*fault_kinds(), CLEAR))}")
    if kind == CRASH:
        return _crash(lab, node)
    if kind == SSH_DOWN:
        return _ssh_down(lab, node)
    set_fault(lab.db_file, node.name, kind)
    return f"{node.name}: fault {kind} set"


def _crash(lab: Lab, node: Node) -> str:
    pids = node_pids(lab, node)
    if not pids:
        raise LabError(f"{node.name} has no running node process to crash")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    hosts.wait_until_gone(pids, 2.0)
    return f"{node.name}: node process {', '.join(map(str, sorted(pids)))} killed with SIGKILL"


def _ssh_down(lab: Lab, node: Node) -> str:
    if not lab.ssh:
        raise LabError(f"the lab at {lab.dir} runs in local mode: its nodes have no sshd to stop")
    hosts.stop_sshd(node.sshd)
    return f"{node.name}: sshd stopped ({node.address}:{hosts.SSH_PORT} refuses connections)"


def _clear(lab: Lab, node: Node) -> str:
    set_fault(lab.db_file, node.name, None)
    if lab.ssh and node.sshd.pid() is None:
        hosts.start_sshd(node.sshd)
        return f"{node.name}: fault cleared, sshd started again"
    return f"{node.name}: fault cleared"


def start(lab_dir: Path, node_name: str) -> int | None:
    lab = load(lab_dir)
    if (synchrony := lab.synchrony_host(node_name)) is not None:
        synchrony_hosts.run_script(synchrony, synchrony_hosts.START_SCRIPT)
        return hosts.read_pid(synchrony.pid_file)
    return start_node(lab.node(node_name))


def stop(lab_dir: Path, node_name: str) -> None:
    lab = load(lab_dir)
    if (synchrony := lab.synchrony_host(node_name)) is not None:
        synchrony_hosts.run_script(synchrony, synchrony_hosts.STOP_SCRIPT)
        return
    stop_node(lab.node(node_name))
