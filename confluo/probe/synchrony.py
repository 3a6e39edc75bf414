"""The standalone Synchrony probe: one read-only round trip per Synchrony node, its heartbeat from this machine,
and, on each Confluence node, whether the login user can read the jar in its local home. Changes nothing."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from confluo.api.base import ClusterApi
from confluo.inventory import SYNCHRONY_JAR, Inventory, Node, SynchronyNode
from confluo.parallel import in_parallel
from confluo.probe.facts import SynchronyFacts
from confluo.steps.synchrony import PID_FILE, START_SCRIPT, STOP_SCRIPT
from confluo.transport.base import TransportError, quote_argv
from confluo.transport.remote import CP, LN, MV, RM, HostShell, Remote

PRIVILEGED = (CP, MV, LN, RM)  # what replacing the jar needs as root, when the node has sudo

# $1 home, $2 the commands sudo must allow (empty: no sudo), $3 the run user (empty: the login user).
_PROBE = r"""
home=$1; privileged=$2; run_as=$3
jar=$home/__JAR__; start=$home/__START__; stop=$home/__STOP__
echo "@@login_home"; printf '%s\n' "$HOME"
echo "@@login_user"; id -un
echo "@@home"; [ -d "$home" ] && echo yes
echo "@@jar"; [ -f "$jar" ] && echo yes
echo "@@jar_readable"; [ -r "$jar" ] && echo yes
echo "@@jar_sha256"; [ -f "$jar" ] && [ -r "$jar" ] && sha256sum -- "$jar" | cut -d' ' -f1
echo "@@jar_bytes"; [ -f "$jar" ] && stat -c %s -- "$jar"
echo "@@not_executable"; for script in "$start" "$stop"; do [ -f "$script" ] && [ -x "$script" ] || echo "$script"; done
echo "@@free_kb"; df -Pk "$home" 2>/dev/null | awk 'NR==2 {print $4}'
echo "@@staging_free_kb"; df -Pk "$HOME" 2>/dev/null | awk 'NR==2 {print $4}'
echo "@@running"; pid=$(cat "$home/__PID__" 2>/dev/null); [ -n "$pid" ] && [ -d "/proc/$pid" ] && echo yes
echo "@@sudo_denied"; for cmd in $privileged; do sudo -n -l "$cmd" >/dev/null 2>&1 || echo "$cmd"; done
if [ -n "$run_as" ] && [ "$run_as" != "$(id -un)" ]; then
  for script in "$start" "$stop"; do
    sudo -n -l -u "$run_as" "$script" >/dev/null 2>&1 || echo "$script (as $run_as)"
  done
fi
echo "@@end"
"""
PROBE_SCRIPT = (
    _PROBE.replace("__JAR__", SYNCHRONY_JAR)
    .replace("__START__", START_SCRIPT)
    .replace("__STOP__", STOP_SCRIPT)
    .replace("__PID__", PID_FILE)
)


def probe_command(node: SynchronyNode) -> str:
    privileged = " ".join(PRIVILEGED) if node.sudo else ""
    arguments = [str(node.home), privileged, node.run_as or ""]
    return quote_argv(["bash", "-c", PROBE_SCRIPT, "confluo-synchrony-probe", *arguments])


def parse_probe(node: str, output: str) -> SynchronyFacts:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("@@"):
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None and line:
            current.append(line)

    def one(name: str) -> str | None:
        lines = sections.get(name, [])
        return lines[0] if lines else None

    def number(name: str) -> int | None:
        value = one(name)
        return int(value) if value and value.isdigit() else None

    def megabytes(name: str) -> int | None:
        kilobytes = number(name)
        return None if kilobytes is None else kilobytes // 1024

    return SynchronyFacts(
        node=node,
        login_home=one("login_home") or "",
        login_user=one("login_user"),
        home_exists=one("home") == "yes",
        jar_exists=one("jar") == "yes",
        jar_readable=one("jar_readable") == "yes",
        jar_sha256=one("jar_sha256"),
        jar_bytes=number("jar_bytes"),
        not_executable=tuple(sections.get("not_executable", [])),
        free_mb=megabytes("free_kb"),
        staging_free_mb=megabytes("staging_free_kb"),
        running=one("running") == "yes",
        sudo_denied=tuple(sections.get("sudo_denied", [])),
    )


def probe_synchrony(node: SynchronyNode, shell: HostShell, api: ClusterApi) -> SynchronyFacts:
    heartbeat = api.heartbeat(node.heartbeat_url, timeout=5.0)
    try:
        result = shell.shell(probe_command(node), timeout=120, check=False)
    except TransportError as exc:
        return SynchronyFacts(node=node.name, error=f"unreachable: {exc.message}", heartbeat=heartbeat.seen)
    if "@@end" not in result.stdout:
        detail = "\n".join(result.stderr.strip().splitlines()[-5:]) or "its output ended early"
        return SynchronyFacts(node=node.name, error=f"probe failed (exit {result.exit_status}): {detail}")
    facts = parse_probe(node.name, result.stdout)
    shell.login_user = facts.login_user
    return SynchronyFacts(**{**vars(facts), "heartbeat": heartbeat.seen, "heartbeat_ok": heartbeat.ok})


def jar_readable(remote: Remote) -> bool:
    """Whether the login user can read the jar in the node's local home (else it is copied as root first)."""
    jar = posixpath.join(str(remote.node.home), SYNCHRONY_JAR)
    try:
        return remote.shell(quote_argv(["test", "-r", jar]), check=False).ok
    except TransportError:
        return False  # unreachable: the node probe reports it


def gather_synchrony(
    inventory: Inventory, shells: Mapping[str, HostShell], remotes: Mapping[str, Remote], api: ClusterApi
) -> tuple[tuple[SynchronyFacts, ...], dict[str, bool]]:
    """Every Synchrony node's facts, and for each Confluence node whether its local home's jar is readable."""
    if not inventory.synchrony:
        return (), {}
    found = in_parallel(list(inventory.synchrony), lambda node: probe_synchrony(node, shells[node.name], api))

    def readable(node: Node) -> bool:
        return jar_readable(remotes[node.name])

    sources = in_parallel(list(inventory.nodes), readable)
    return tuple(found), {node.name: ok for node, ok in zip(inventory.nodes, sources, strict=True)}
