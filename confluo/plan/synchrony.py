"""The standalone Synchrony part of an upgrade (seed: "Upgrade Synchrony"): once the first Confluence node runs the
target, each Synchrony node in turn gets that node's synchrony-standalone.jar — copied, stopped, swapped, started,
its heartbeat OK — and, should it not come back, its old jar again.

Which Confluence node is upgraded first is decided as the run goes (the least busy one then), so the steps are
made for every node that could be first; the runner takes the ones of the node it upgraded first.
"""

from __future__ import annotations

import posixpath

from confluo.inventory import SYNCHRONY_JAR, Inventory, Node, SynchronyNode
from confluo.layout import STAGING_DIR
from confluo.plan.model import NodeWork
from confluo.probe.facts import Facts, SynchronyFacts
from confluo.steps.base import Host, Step
from confluo.steps.synchrony import (
    RestoreSynchronyJar,
    StartSynchrony,
    StopSynchrony,
    SwapSynchronyJar,
    SynchronyHost,
    jar_paths,
)
from confluo.steps.synchrony_copy import CopySynchronyJar

MiB = 1024 * 1024


def synchrony_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    """Every reason to refuse, located (`synchrony.nodes[1] (synchrony2): ...`), before anything is changed."""
    reasons: list[str] = []
    for index, node in enumerate(inventory.synchrony):
        reasons += _node_reasons(f"synchrony.nodes[{index}] ({node.name})", node, facts.for_synchrony(node.name))
    if inventory.synchrony:
        reasons += [
            f"{node.name}: {_source_jar(node)} cannot be read by the login user and sudo is off: its new jar could "
            "not be copied to the Synchrony nodes (let the login user read the local home, or set sudo: true)"
            for node in inventory.nodes
            if not facts.jar_readable.get(node.name, True) and not node.sudo
        ]
    return reasons


def _node_reasons(where: str, node: SynchronyNode, found: SynchronyFacts) -> list[str]:
    if not found.reachable:
        return [f"{where}: {found.error}"]
    reasons = []
    if not found.home_exists:
        reasons.append(f"{where}: the Synchrony home {node.home} does not exist")
    elif not found.jar_exists:
        reasons.append(f"{where}: there is no {SYNCHRONY_JAR} in the Synchrony home {node.home}")
    elif not found.jar_readable:
        reasons.append(
            f"{where}: {node.jar} cannot be read by the login user {found.login_user}; confluo tells jars apart "
            "by their sha256"
        )
    reasons += [f"{where}: {script} is missing or not executable" for script in found.not_executable]
    if found.sudo_denied:
        reasons.append(f"{where}: `sudo -n` is not allowed for {', '.join(found.sudo_denied)}")
    needed = 2 * (found.jar_bytes or 0)  # the new jar (its size unknown yet) beside the old one, with room to spare
    for free, place in ((found.free_mb, str(node.home)), (found.staging_free_mb, "the login user's home")):
        if free is not None and free * MiB < needed:
            reasons.append(f"{where}: only {free} MB free in {place}, {needed // MiB + 1} MB needed for the new jar")
    return reasons


def synchrony_notes(inventory: Inventory, facts: Facts) -> tuple[str, ...]:
    return tuple(
        f"Synchrony {node.name}'s heartbeat answers {found.heartbeat} now: it is started on the new jar"
        for node in inventory.synchrony
        if (found := facts.for_synchrony(node.name)).reachable and not found.heartbeat_ok
    )


def synchrony_works(inventory: Inventory, facts: Facts) -> dict[str, tuple[NodeWork, ...]]:
    """For each Confluence node that may be upgraded first: every Synchrony node's steps, with that node's local
    home as the jar's source."""
    target = str(inventory.target.version)
    works = {}
    for source in inventory.nodes:
        host = Host(source, facts.for_node(source.name).login_user)
        works[source.name] = tuple(
            _work(node, facts.for_synchrony(node.name), host, target) for node in inventory.synchrony
        )
    return works


def _work(node: SynchronyNode, found: SynchronyFacts, source: Host, target: str) -> NodeWork:
    host = SynchronyHost(node, found.login_user)
    paths = jar_paths(node, target)
    staging = posixpath.join(found.login_home, STAGING_DIR, node.name, SYNCHRONY_JAR)
    steps: tuple[Step, ...] = (
        CopySynchronyJar(host, paths, source, staging),
        StopSynchrony(host, paths),
        SwapSynchronyJar(host, paths),
        StartSynchrony(host, paths),
    )
    back = (StopSynchrony(host, paths, for_swap=False), RestoreSynchronyJar(host, paths), StartSynchrony(host, paths))
    return NodeWork(node.name, steps, back)


def _source_jar(node: Node) -> str:
    return posixpath.join(str(node.home), SYNCHRONY_JAR)
