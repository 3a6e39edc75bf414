"""lock status · lock release: the cluster lock in the shared home, and a lock left behind by a run that died."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from confluo import app
from confluo.cli.env import Env
from confluo.cli.options import (
    EXIT_CODES_HELP,
    accept_new_option,
    force_option,
    inventory_option,
    json_option,
    yes_option,
)
from confluo.cli.outcome import session_for
from confluo.cli.upgrade import confirm, say
from confluo.errors import RefusedError
from confluo.execute.run_lock import NO_SHARED_HOME
from confluo.execute.shared_lock import LockState, ago, describe


@click.group()
def lock() -> None:
    """The cluster lock in the shared home that keeps two runs, from any machines, apart."""


@lock.command("status", epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@json_option
@accept_new_option
@click.pass_obj
def status(env: Env, inventory_path: Path, as_json: bool, accept_new_host_keys: bool) -> None:
    """Who holds the cluster lock (holder, pid, command, age, heartbeat age, stale or not), or that it is free."""
    with session_for(
        env, inventory_path, accept_new_host_keys=accept_new_host_keys, as_json=as_json, read_only=True
    ) as session:
        state = app.lock_state(session)
        if as_json:
            click.echo(json.dumps(_as_json(state), indent=2))
        else:
            click.echo(NO_SHARED_HOME if state is None else describe(state))


@lock.command("release", epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@yes_option
@force_option
@json_option
@accept_new_option
@click.pass_obj
def release(env: Env, inventory_path: Path, yes: bool, force: bool, as_json: bool, accept_new_host_keys: bool) -> None:
    """Release the cluster lock left by a run that died. A live lock (fresh heartbeat) needs --force as well."""
    with session_for(env, inventory_path, accept_new_host_keys=accept_new_host_keys, as_json=as_json) as session:
        state = app.lock_state(session)
        if state is None or not state.held:
            say(as_json, NO_SHARED_HOME if state is None else f"{describe(state)}; nothing to release", "nothing_to_do")
            return
        say(as_json, f"the cluster lock {state.path} is held by {describe(state)}", "lock_held")
        if not state.stale and not force:
            raise RefusedError(
                [f"the cluster lock is live: its last heartbeat is {ago(state.heartbeat_age)} old (it turns stale "
                 f"after {state.stale_after:.0f} s without one)"],
                hint="wait for that run to end; only if you know it is gone, add --force",
            )  # fmt: skip
        if not yes:
            confirm(env, f"Release the cluster lock {state.path}?", as_json)
        if not app.release_lock(session, state):
            raise RefusedError(
                [f"the cluster lock {state.path} changed hands while you looked; nothing was released"],
                hint="`confluo lock status -i INVENTORY` shows who holds it now",
            )
        say(as_json, f"released the cluster lock {state.path}", "lock_released")


def _as_json(state: LockState | None) -> dict[str, Any]:
    if state is None:
        return {"v": 1, "shared_home": None, "held": None, "message": NO_SHARED_HOME}
    return {"v": 1, **state.as_json(), "description": describe(state)}
