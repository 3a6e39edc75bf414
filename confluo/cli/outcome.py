"""The one place where every way a command ends becomes its message, its hint and its exit code."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click

from confluo.app import Session, open_session
from confluo.cli.env import Env
from confluo.errors import ConfluoError, ExitCode, NothingChanged, Terminated, UnusableLocalFile
from confluo.inventory import Inventory
from confluo.secrets import Masker
from confluo.ui.log import CommandLog

INTERRUPTED_HINT = (
    "the node in progress was brought back to serving first; nothing is half-done on disk. Upgrade mode "
    "may still be on: the same command again continues where this stopped, and `confluo status` shows "
    "where the cluster stands and what continues it"
)


@contextmanager
def session_for(
    env: Env,
    inventory_path: Path,
    *,
    target_version: str | None = None,
    accept_new_host_keys: bool = False,
    log: CommandLog | None = None,
    masker: Masker | None = None,
    as_json: bool = False,
    read_only: bool = False,
    interrupted_hint: str = INTERRUPTED_HINT,
    load: Callable[[Path], Inventory] | None = None,
) -> Iterator[Session]:
    """Opens the session and turns every way a command can end into its message, its hint and its exit code.
    `read_only`: the command changes nothing, so no failure of it may claim that changes began.
    `interrupted_hint`: what Ctrl-C or SIGTERM left behind, for the command at hand."""
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
            ports=env.ports,
            load=load,
        )
        _state_folder(env.state_dir)
        if log is not None:
            log.open()  # only now: an invalid run leaves no log file
        yield session
    except ConfluoError as exc:
        if read_only and exc.exit_code is ExitCode.FAILED_AFTER_CHANGES:
            exc = NothingChanged(exc)
        fail(exc.exit_code, exc.message, exc.hint)
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Terminated)
        fail(
            ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED,
            "terminated (SIGTERM)" if terminated else "interrupted",
            interrupted_hint,
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


def _state_folder(path: Path) -> None:
    """Where runs keep their journal and logs, made before any host is contacted."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnusableLocalFile(
            f"the state folder {path} cannot be made: {exc.strerror or exc}",
            hint="set XDG_STATE_HOME to a folder you can write",
        ) from exc


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
