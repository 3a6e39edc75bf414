"""The command line: the only module that imports click. It parses, calls the core, renders, exits."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from confluo import __version__
from confluo.app import Session, cluster_status, make_plan, open_session
from confluo.errors import ConfluoError, ExitCode, NeedsConfirmation
from confluo.execute import Executor, RunReport
from confluo.lab.cli import lab
from confluo.lock import cluster_lock
from confluo.secrets import Masker
from confluo.ui import (
    CommandLog,
    JsonLines,
    LiveView,
    PlainLines,
    plan_as_json,
    plan_as_text,
    plan_summary,
    status_table,
)

EXIT_CODES_HELP = "\n".join(f"  {code.value:>3}  {code.description}" for code in ExitCode)

inventory_option = click.option(
    "-i",
    "--inventory",
    "inventory_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The YAML inventory of the cluster (see inventory.sample.yaml).",
)
to_option = click.option("--to", "target_version", metavar="VERSION", help="Target version (overrides target.version).")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
accept_new_option = click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Trust and remember host keys not yet in known_hosts (this run only). Changed keys are always refused.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@click.version_option(__version__, prog_name="confluo")
def cli() -> None:
    """Zero-downtime rolling upgrades of Confluence Data Center clusters over SSH."""


cli.add_command(lab)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (click's own), to source or save; the README shows where."""
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None  # every choice is one of click's built-in shells
    click.echo(completer(cli, {}, "confluo", "_CONFLUO_COMPLETE").source())


@cli.command()
@inventory_option
@to_option
@json_option
@accept_new_option
def plan(inventory_path: Path, target_version: str | None, as_json: bool, accept_new_host_keys: bool) -> None:
    """Probe every node and the cluster for real, and print the ordered plan. Changes nothing."""
    with _session(inventory_path, target_version, accept_new_host_keys, as_json=as_json) as session:
        the_plan, facts = make_plan(session)
        if as_json:
            click.echo(json.dumps(plan_as_json(the_plan, facts), indent=2))
        else:
            click.echo(plan_as_text(the_plan, facts), nl=False)


@cli.command(epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@to_option
@click.option("--yes", is_flag=True, help="Act without asking (needed when there is no terminal, e.g. cron).")
@json_option
@accept_new_option
@click.option("--log-file", type=click.Path(path_type=Path), help="Where to log every remote command.")
def upgrade(
    inventory_path: Path,
    target_version: str | None,
    yes: bool,
    as_json: bool,
    accept_new_host_keys: bool,
    log_file: Path | None,
) -> None:
    """Upgrade the cluster, one node at a time, without downtime."""
    masker = Masker()
    log = CommandLog(log_file or _default_log_path(), masker)
    with (
        _session(inventory_path, target_version, accept_new_host_keys, log, masker, as_json) as session,
        cluster_lock(session.inventory.cluster.api_url),
    ):
        session.events.subscribe(log.event)
        the_plan, facts = make_plan(session)
        if the_plan.nothing_to_do:
            _say(as_json, f"every node already runs {the_plan.target_version}; nothing to do", "nothing_to_do")
            return
        if not yes:
            if not as_json and sys.stdin.isatty():
                click.echo("\n".join(plan_summary(the_plan, facts)))
            _confirm(the_plan.cluster_name, the_plan.source_version, the_plan.target_version, as_json)
        report = _run_with_view(
            session, as_json, lambda: Executor(the_plan, session.remotes, session.api, session.events).run()
        )
        _summary(report, as_json, log.path)


@cli.command()
@inventory_option
@json_option
@accept_new_option
def status(inventory_path: Path, as_json: bool, accept_new_host_keys: bool) -> None:
    """The cluster's state, upgrade mode, and every node as the API and the hosts see it."""
    with _session(inventory_path, None, accept_new_host_keys, as_json=as_json) as session:
        report = cluster_status(session)
        if as_json:
            click.echo(json.dumps(report, indent=2))
        else:
            Console().print(status_table(session.inventory.cluster.name, report))


# -- helpers -------------------------------------------------------------------------------------------------


@contextmanager
def _session(
    inventory_path: Path,
    target_version: str | None,
    accept_new_host_keys: bool,
    log: CommandLog | None = None,
    masker: Masker | None = None,
    as_json: bool = False,
) -> Iterator[Session]:
    """Opens the session and turns every way a command can end into its message, its hint and its exit code."""
    masker = masker or Masker()
    session = None

    def fail(code: ExitCode, message: str, hint: str | None) -> NoReturn:
        _fail(code, masker.mask(message), masker.mask(hint) if hint else None, log, as_json)

    try:
        session = open_session(
            inventory_path,
            target_version=target_version,
            accept_new_host_keys=accept_new_host_keys,
            listeners=[log.command] if log else [],
            masker=masker,
        )
        yield session
    except ConfluoError as exc:
        fail(exc.exit_code, exc.message, exc.hint)
    except KeyboardInterrupt:
        fail(
            ExitCode.INTERRUPTED,
            "interrupted",
            "no step was left half-done on disk (a new installation appears only once complete), but upgrade mode "
            "may be on and a node stopped: `confluo status` shows where the cluster stands",
        )
    except click.exceptions.Exit:
        raise
    except Exception as exc:
        if log is not None:
            log.event_text(traceback.format_exc())
        fail(ExitCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}", "please report this with the log file")
    finally:
        if session is not None:
            session.close()
        if log is not None:
            log.close()


def _fail(code: ExitCode, message: str, hint: str | None, log: CommandLog | None, as_json: bool) -> NoReturn:
    """The end of a run that did not succeed: on stderr, in the log, and as the last JSON event with --json."""
    if log is not None:
        log.event_text(f"error (exit {int(code)}): {message}" + (f"\nhint: {hint}" if hint else ""))
    if as_json:
        record = {"v": 1, "event": "run_finished", "result": code.name.lower(), "exit_code": int(code)}
        click.echo(json.dumps({**record, "message": message, "hint": hint}, separators=(",", ":")))
    click.secho(f"error: {message}", fg="red", err=True)
    if hint:
        click.secho(f"hint: {hint}", fg="yellow", err=True)
    sys.exit(int(code))


def _confirm(cluster: str, source: str, target: str, as_json: bool) -> None:
    if as_json or not sys.stdin.isatty():
        raise NeedsConfirmation()
    if not click.confirm(f"Upgrade {cluster} from {source} to {target} now?", default=False):
        raise NeedsConfirmation("not confirmed: nothing was changed", hint=None)


def _run_with_view(session: Session, as_json: bool, work: Callable[[], RunReport]) -> RunReport:
    if as_json:
        session.events.subscribe(JsonLines(sys.stdout))
        return work()
    if sys.stdout.isatty():
        with LiveView(Console(), [n.name for n in session.inventory.nodes]) as view:
            session.events.subscribe(view)
            return work()
    session.events.subscribe(PlainLines(sys.stdout))
    return work()


def _summary(report: RunReport, as_json: bool, log_path: Path) -> None:
    data: dict[str, Any] = {
        "prestage_seconds": round(report.prestage_seconds, 2),
        "rolling_seconds": round(report.rolling_seconds, 2),
        "finalize_seconds": round(report.finalize_seconds, 2),
        "bytes_sent": report.bytes_sent,
        "out_of_service_seconds": {k: round(v, 2) for k, v in report.out_of_service.items()},
        "stop_seconds": {k: round(v, 2) for k, v in report.stop_seconds.items()},
        "start_seconds": {k: round(v, 2) for k, v in report.start_seconds.items()},
        "log_file": str(log_path),
    }
    if as_json:
        click.echo(json.dumps({"v": 1, "event": "summary", **data}, separators=(",", ":")))
        return
    click.echo(
        f"done: pre-staging {data['prestage_seconds']} s, rolling {data['rolling_seconds']} s, finalize "
        f"{data['finalize_seconds']} s; each node out of service: "
        + ", ".join(f"{k} {v} s" for k, v in data["out_of_service_seconds"].items())
    )
    click.echo(f"log: {log_path}")


def _say(as_json: bool, message: str, kind: str) -> None:
    if as_json:
        click.echo(json.dumps({"v": 1, "event": kind, "message": message}, separators=(",", ":")))
    else:
        click.echo(message)


def _default_log_path() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return state / "confluo" / "logs" / time.strftime("upgrade-%Y%m%d-%H%M%S.log")


def main() -> None:
    cli(prog_name="confluo")
