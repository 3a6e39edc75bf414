"""The operator's own commands: a small control script driving a real HAProxy, and the quoting of every value."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lbkit import Pool, Running, backends, haproxy, send, workdir

from confluo.errors import InventoryError
from confluo.loadbalancer.base import AdminState, ChangeNotApplied, LoadBalancerError
from confluo.loadbalancer.command import CommandLoadBalancer, Member, parse_status
from confluo.transport.base import quote_argv
from confluo.transport.local import LocalTransport

# What an operator might have: one script for their HAProxy, `lbctl drain|maint|ready|status SERVER`.
LBCTL = """\
#!/bin/bash
set -euo pipefail
action=$1 server=$2 sock=$3
ask() { printf '%s\\n' "$1" | socat stdio "unix-connect:$sock"; }
case $action in
  status) ask "show stat" | awk -F, -v s="$server" '$1 == "app" && $2 == s { print tolower($18) }' \\
            | sed -e 's/^up$/ready/' -e 's/^down$/ready/' ;;
  *) ask "set server app/$server state $action" >/dev/null ;;
esac
"""


@pytest.fixture
def pool() -> Iterator[Pool]:
    with backends(2) as started:
        yield started


@pytest.fixture
def lb(pool: Pool) -> Iterator[Running]:
    with workdir() as directory, haproxy(directory, pool) as running:
        yield running


def members(pool: Pool) -> list[Member]:
    return [Member(b.name, f"node{b.name[1:]}", b.address) for b in pool.members]


def test_operator_commands_drive_a_real_load_balancer(pool: Pool, lb: Running) -> None:
    script = lb.dir / "lbctl"
    script.write_text(LBCTL)
    script.chmod(0o755)
    base = f"{quote_argv([str(script)])} {{action}} {{server}} {quote_argv([lb.extra['socket']])}"
    commands = {kind: base.replace("{action}", kind) for kind in ("drain", "ready", "status", "maint")}
    operator = CommandLoadBalancer(LocalTransport("lb1"), members(pool), **commands)

    operator.drain("n1")
    assert operator.state("n1").admin is AdminState.DRAIN
    pool.reset()
    send(lb.url, 10)
    assert pool.hits() == {"n1": 0, "n2": 10}
    operator.maint("n1")
    assert operator.state("n1").admin is AdminState.MAINT
    operator.ready("n1")
    assert operator.state("n1").admin is AdminState.READY
    assert operator.describe("n1", AdminState.DRAIN) == f"{script} drain n1 {lb.extra['socket']}  # on lb1"


def test_every_value_is_quoted_for_the_shell(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    evil = Member("n1; touch pwned", "node 'one'", "$(touch pwned)")
    operator = CommandLoadBalancer(
        LocalTransport("lb1"),
        [evil],
        drain=f"cd {tmp_path} && printf '%s|%s|%s\\n' {{server}} {{node}} {{host}} >> calls",
        ready="true",
        status="echo DRAIN",
    )
    operator.drain(evil.server)
    assert log.read_text() == "n1; touch pwned|node 'one'|$(touch pwned)\n"
    assert not (tmp_path / "pwned").exists()


def test_a_change_the_status_does_not_confirm_is_detected() -> None:
    operator = CommandLoadBalancer(
        LocalTransport("lb1"), [Member("n1", "node1", "10.0.0.1")], drain="true", ready="true", status="echo ready"
    )
    with pytest.raises(ChangeNotApplied, match=r"for n1: server n1 is ready .* expected drain"):
        operator.drain("n1")
    # Without a maint command, maint is the operator's drain, and drain satisfies it.
    drained = CommandLoadBalancer(
        LocalTransport("lb1"), [Member("n1", "node1", "10.0.0.1")], drain="true", ready="true", status="echo drain"
    )
    drained.maint("n1")
    assert drained.describe("n1", AdminState.MAINT) == "true  # on lb1"


def test_bad_output_failures_and_templates_get_clear_errors() -> None:
    member = [Member("n1", "node1", "10.0.0.1")]
    transport = LocalTransport("lb1")
    odd = CommandLoadBalancer(transport, member, drain="true", ready="true", status="echo 'UP 2/3'")
    with pytest.raises(LoadBalancerError, match=r"the status command printed 'UP 2/3'; expected ready, drain or maint"):
        odd.state("n1")
    failing = CommandLoadBalancer(
        transport, member, drain=": --token s3cret; echo nope >&2; exit 3", ready="true", status="echo drain"
    )
    with pytest.raises(LoadBalancerError, match="the drain command exited 3:\nnope") as caught:
        failing.drain("n1")
    assert "s3cret" not in caught.value.message
    with pytest.raises(LoadBalancerError, match=r"know no server 'n9' \(they know: n1\)"):
        failing.state("n9")
    with pytest.raises(InventoryError, match=r"the ready command template has \{user\}"):
        CommandLoadBalancer(transport, member, drain="true", ready="lbctl {user}", status="true")
    with pytest.raises(InventoryError, match="status command template is malformed"):
        CommandLoadBalancer(transport, member, drain="true", ready="true", status="lbctl {server")
    assert parse_status("checking...\n  MAINT \n\n") is AdminState.MAINT
    assert parse_status("") is None
