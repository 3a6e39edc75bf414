"""`confluo lab`: start, inspect, disturb and stop a simulated Confluence Data Center cluster."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from confluo.lab import control, hosts, lifecycle, model, tarball
from confluo.lab.hosts import LabError
from confluo.lab.status import status as lab_status

P = ParamSpec("P")
R = TypeVar("R")

dir_option = click.option(
    "--dir",
    "lab_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=model.DEFAULT_DIR,
    show_default=True,
    help="The lab's folder.",
)


def lab_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the lab's errors into a clean message and a non-zero exit, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LabError as error:
            raise click.ClickException(str(error)) from error
        except OSError as error:  # e.g. no space left, permission denied on --dir
            raise click.ClickException(f"{type(error).__name__}: {error}") from error

    return wrapper


@click.group()
def lab() -> None:
    """A simulated Confluence Data Center cluster, reached over real SSH."""


# ------------------------------------------------------------------------------------------------- up


@lab.command()
@dir_option
@click.option("--nodes", type=click.IntRange(1, model.MAX_NODES), default=3, show_default=True)
@click.option("--version", "version", default=model.DEFAULT_VERSION, show_default=True, help="Installed release.")
@click.option("--db", type=click.Choice(model.DATABASES), default="mysql", show_default=True)
@click.option("--lb", type=click.Choice(model.LB_KINDS), default="haproxy", show_default=True)
@click.option(
    "--lb-retries",
    is_flag=True,
    help="The load balancer re-sends a failed request to another server (HAProxy redispatch/retry-on, nginx "
    "proxy_next_upstream http_503 non_idempotent): forgiving settings that hide what a drain protects against.",
)
@click.option("--start-seconds", type=click.FloatRange(min=0), default=2.0, show_default=True)
@click.option("--stop-seconds", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--finalize-seconds", type=click.FloatRange(min=0), default=2.0, show_default=True)
@click.option(
    "--index-seconds",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="How often each node's search index takes new content (a search misses a page that new).",
)
@click.option(
    "--spare-hosts",
    type=click.IntRange(0, model.MAX_NODES),
    default=0,
    show_default=True,
    help="Hosts with sshd and a login user but no Confluence, for `confluo add-node`.",
)
@click.option("--local", is_flag=True, help=f"Local mode even where ssh is possible (or {hosts.MODE_ENV}=local).")
@click.option(
    "--synchrony", type=click.IntRange(0, model.MAX_SYNCHRONY), default=0, show_default=True,
    help="Standalone Synchrony hosts, each with its own sshd and user.",
)  # fmt: skip
@lab_errors
def up(
    lab_dir: Path,
    nodes: int,
    version: str,
    db: str,
    lb: str,
    lb_retries: bool,
    start_seconds: float,
    stop_seconds: float,
    finalize_seconds: float,
    index_seconds: float,
    spare_hosts: int,
    local: bool,
    synchrony: int,
) -> None:
    """Start a lab: N nodes ACTIVE behind a load balancer, an inventory, the next release's archive."""
    timings = model.Timings(start_seconds, stop_seconds, finalize_seconds, index_seconds)
    options = model.LabOptions(
        nodes=nodes,
        version=version,
        db=db,
        lb=lb,
        timings=timings,
        local=local,
        lb_retries=lb_retries,
        synchrony=synchrony,
        spare_hosts=spare_hosts,
    )
    began = time.monotonic()
    started = lifecycle.up(lab_dir, options, progress=lambda line: click.echo(f"  {line}", err=True))
    elapsed = time.monotonic() - began
    if not started.ssh:
        click.echo(f"LOCAL MODE: {local_mode_reason(local)}; nodes run as you, without sshd or sudo.")
    extra = f", {synchrony} Synchrony nodes serving" if synchrony else ""
    extra += f", {spare_hosts} spare host{'s' if spare_hosts != 1 else ''}" if spare_hosts else ""
    click.echo(f"Lab up in {elapsed:.1f} s: {nodes} nodes ACTIVE{extra}, {version}, slot {started.slot}, {started.dir}")
    click.echo(render_status(lab_status(started.dir)))


def local_mode_reason(flag: bool) -> str:
    if flag or hosts.forced_local():
        return f"asked for (--local or {hosts.MODE_ENV}=local)"
    if os.geteuid() != 0:
        return "not running as root"
    return f"OpenSSH's server is not installed ({hosts.SSHD})"


# --------------------------------------------------------------------------------------------- status


@lab.command()
@dir_option
@click.option("--json", "as_json", is_flag=True, help="The status as JSON (format in docs/lab.md).")
@lab_errors
def status(lab_dir: Path, as_json: bool) -> None:
    """Show the lab's nodes, the cluster and how to reach them."""
    report = lab_status(lab_dir)
    click.echo(json.dumps(report, indent=2) if as_json else render_status(report))


def render_status(report: dict[str, Any]) -> str:
    state = report["cluster"]
    lb = report["lb"]
    lines = [
        f"lab        {report['dir']} ({report['mode']} mode)",
        f"cluster    {state['state']}, version {state['version']}, upgrade mode {_on_off(state)}",
        f"api        {report['api']['url']} (user {report['api']['username']})",
        f"lb         {' '.join(str(v) for v in (lb['kind'], lb['url'], lb['socket']) if v)}",
        f"inventory  {report['inventory']}",
        f"next       {report['next_version']}: {report['next_archive']}",
        "",
    ]
    header = ("NODE", "ADDRESS", "STATE", "STATUS", "VERSION", "PID", "INDEX", "LOGIN", "PROBLEMS")
    rows: list[tuple[str, ...]] = [header]
    journal = state.get("index_journal", 0)
    for node in report["nodes"]:
        login = f"{node['ssh']['user']}@{node['ssh']['host']}" if node.get("ssh") else "-"
        rows.append(
            (
                node["name"],
                node.get("address") or "-",
                node.get("state") or "-",
                node.get("status") or "-",
                node.get("version") or "-",
                str(node.get("pid") or "-"),
                f"{node['index_position']}/{journal}" if node.get("index_position") is not None else "-",
                login,
                "; ".join(node.get("problems") or []) or "-",
            )
        )
    for host in report.get("synchrony", []):
        login = f"{host['ssh']['user']}@{host['ssh']['host']}" if host.get("ssh") else "-"
        problems = "; ".join(host["problems"]) or "-"
        rows.append((host["name"], host["address"], "SYNCHRONY", f"heartbeat {host['heartbeat']}",
                     host["version"] or "-", str(host["pid"] or "-"), login, problems))  # fmt: skip
    spare_rows: list[tuple[str, ...]] = [("SPARE HOST", "ADDRESS", "LOGIN", "INSTALL BASE", "HOME")]
    for spare in report.get("spare_hosts") or []:
        login = f"{spare['ssh']['user']}@{spare['ssh']['host']}" if spare.get("ssh") else "-"
        spare_rows.append((spare["name"], spare["address"], login, spare["install_base"], spare["home"]))
    spare_lines = ["", *table(spare_rows)] if len(spare_rows) > 1 else []
    return "\n".join(lines + table(rows) + spare_lines)


def _on_off(cluster_state: dict[str, Any]) -> str:
    return "on" if cluster_state["upgrade_mode"] else "off"


def table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


# -------------------------------------------------------------------------------------------- control


@lab.command("set")
@click.argument("node")
@dir_option
@click.option("--tasks", type=click.IntRange(min=0), help="Running (cluster) tasks on the node.")
@click.option("--users", type=click.IntRange(min=0), help="Active users on the node.")
@lab_errors
def set_(node: str, lab_dir: Path, tasks: int | None, users: int | None) -> None:
    """Set a node's running tasks and active users (tasksTotal / activeUserCount in the ZDU API)."""
    if tasks is None and users is None:
        raise click.UsageError("give --tasks and/or --users")
    control.set_load(lab_dir, node, tasks=tasks, users=users)
    click.echo(f"{node}: " + ", ".join(f"{k} {v}" for k, v in (("tasks", tasks), ("users", users)) if v is not None))


@lab.command()
@click.argument("node")
@click.argument("kind", metavar="KIND")
@dir_option
@lab_errors
def fault(node: str, kind: str, lab_dir: Path) -> None:
    """Inject a fault into NODE, or `clear` it.

    \b
    KIND: fail-start   the next start ends in ERROR
          hang-start   the next start stays STARTING
          hang-stop    the node ignores SIGTERM
          slow-stop    stopping takes much longer
          crash        SIGKILL the node process now
          ssh-down     stop the node's sshd
          api-500      its ZDU API answers 500
          finalize-fail  its finalization upgrade tasks fail after approve
          index-broken its search index stops taking new content
          pages-broken ACTIVE and RUNNING, but every page (and content read) answers 500
          clear        remove the fault (and start sshd again if it was down)

    \b
    On a Synchrony host (synchrony1, ...):
          fail-upgrade  a jar of another release than the installed one exits at start
          crash, ssh-down, clear  as for a node
    """
    click.echo(control.fault(lab_dir, node, kind))


@lab.command()
@click.argument("node")
@dir_option
@lab_errors
def stop(node: str, lab_dir: Path) -> None:
    """Stop NODE with its installation's stop script, as its user (it goes TERMINATING, then OFFLINE)."""
    control.stop(lab_dir, node)
    click.echo(f"{node}: stop requested")


@lab.command()
@click.argument("node")
@dir_option
@lab_errors
def start(node: str, lab_dir: Path) -> None:
    """Start NODE's current installation with its start script, as its user."""
    pid = control.start(lab_dir, node)
    click.echo(f"{node}: started (pid {pid})")


# ------------------------------------------------------------------------------------------- tarball


@lab.command("tarball")
@click.argument("version")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--size-mb", type=click.IntRange(min=0), default=0, show_default=True, help="Pad to about N MiB.")
@lab_errors
def tarball_(version: str, out_dir: Path, size_mb: int) -> None:
    """Build atlassian-confluence-VERSION.tar.gz, a release the lab's nodes can run."""
    model.parse_version(version)
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = tarball.build_archive(version, out_dir, size_mb)
    click.echo(f"{archive}  sha256 {tarball.sha256_of(archive)}")


# ---------------------------------------------------------------------------------------------- down


@lab.command()
@dir_option
@lab_errors
def down(lab_dir: Path) -> None:
    """Stop every process of the lab and remove its users, sudoers file and slot (files stay for reading)."""
    began = time.monotonic()
    stopped = lifecycle.down(lab_dir)
    click.echo(f"Lab in {stopped.dir} (slot {stopped.slot}) is down after {time.monotonic() - began:.1f} s.")
