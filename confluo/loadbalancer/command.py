"""The operator's own load-balancer commands: `drain`, `ready`, `status` (and optionally `maint`) templates.

A template is a shell command line with the placeholders `{server}`, `{node}` and `{host}`; each value is
shell-quoted before it is put in (so a placeholder belongs outside quotes: `lbctl drain {server}`, not
`lbctl 'drain {server}'`). `{{` and `}}` are literal braces. The status command must print one of `ready`,
`drain` or `maint` as its last line; it is run after every change to read the state back.

Without a `maint` template, `maint` runs the drain command and accepts either drain or maint as the result: the
operator's drain is all this load balancer offers.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluo.errors import InventoryError
from confluo.loadbalancer.base import AdminState, LoadBalancer, LoadBalancerError, ServerState, check_applied
from confluo.transport.base import CommandResult, CommandTimedOut, Transport, TransportError

PLACEHOLDERS = ("server", "node", "host")
STATES = {state.value: state for state in (AdminState.READY, AdminState.DRAIN, AdminState.MAINT)}


@dataclass(frozen=True)
class Member:
    """A node as the operator's commands know it: its name in the load balancer, its node name, its host."""

    server: str
    node: str
    host: str


def check_template(kind: str, template: str) -> str:
    """The template itself; InventoryError when it uses anything but the known placeholders."""
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise InventoryError([f"the {kind} command template is malformed: {exc}"]) from exc
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS or spec or conversion:
            raise InventoryError(
                [f"the {kind} command template has {{{name}}}; only {{server}}, {{node}} and {{host}} are allowed"]
            )
    return template


def render(template: str, member: Member) -> str:
    return template.format(**{name: shlex.quote(getattr(member, name)) for name in PLACEHOLDERS})


def parse_status(output: str) -> AdminState | None:
    """The last non-empty line, when it is ready, drain or maint (any case); None otherwise."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return STATES.get(lines[-1].lower()) if lines else None


class CommandLoadBalancer:
    """Runs the operator's templates through a Transport (on the load-balancer host, or wherever they work)."""

    def __init__(
        self,
        transport: Transport,
        members: Sequence[Member],
        *,
        drain: str,
        ready: str,
        status: str,
        maint: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.transport = transport
        self.members = {member.server: member for member in members}
        self.templates = {
            "drain": check_template("drain", drain),
            "ready": check_template("ready", ready),
            "status": check_template("status", status),
            "maint": check_template("maint", maint) if maint is not None else None,
        }
        self.timeout = timeout

    def state(self, server: str) -> ServerState:
        result = self._run("status", server)
        admin = parse_status(result.stdout)
        if admin is None:
            last = result.stdout.strip().splitlines()[-1:] or [""]
            raise LoadBalancerError(
                f"{self._where(server)}: the status command printed {last[0][:80]!r}; expected ready, drain or maint"
            )
        return ServerState(server, admin, healthy=None, sessions=None, detail=admin.value)

    def drain(self, server: str) -> None:
        self._run("drain", server)
        check_applied(self._where(server), self.state(server), AdminState.DRAIN)

    def maint(self, server: str) -> None:
        if self.templates["maint"] is None:
            self._run("drain", server)
            check_applied(self._where(server), self.state(server), AdminState.MAINT, AdminState.DRAIN)
            return
        self._run("maint", server)
        check_applied(self._where(server), self.state(server), AdminState.MAINT)

    def ready(self, server: str) -> None:
        self._run("ready", server)
        check_applied(self._where(server), self.state(server), AdminState.READY)

    def describe(self, server: str, target: AdminState) -> str:
        kind = target.value if self.templates.get(target.value) else "drain"
        return f"{render(self._template(kind), self._member(server))}  # on {self.transport.node}"

    def warnings(self) -> tuple[str, ...]:
        return ()

    def _template(self, kind: str) -> str:
        template = self.templates.get(kind)
        if template is None:
            raise ValueError(f"no {kind} command template")
        return template

    def _member(self, server: str) -> Member:
        if server not in self.members:
            known = ", ".join(sorted(self.members)) or "none"
            raise LoadBalancerError(f"the load-balancer commands know no server {server!r} (they know: {known})")
        return self.members[server]

    def _where(self, server: str) -> str:
        return f"{self.transport.node}: the load-balancer commands for {server}"

    def _run(self, kind: str, server: str) -> CommandResult:
        line = render(self._template(kind), self._member(server))
        try:
            result = self.transport.run(line, timeout=self.timeout, check=False)
        except CommandTimedOut as exc:
            raise LoadBalancerError(f"{self._where(server)}: the {kind} command ran past {self.timeout:.0f} s") from exc
        except TransportError as exc:
            raise LoadBalancerError(f"{self._where(server)}: the {kind} command: {exc.message}") from exc
        if not result.ok:
            # The line itself stays out of the message: an operator's command may carry a token.
            output = f":\n{result.tail(5)}" if result.tail(5) else ""
            raise LoadBalancerError(f"{self._where(server)}: the {kind} command exited {result.exit_status}{output}")
        return result


if TYPE_CHECKING:  # mypy proves the adapter fills the protocol
    _protocol: type[LoadBalancer] = CommandLoadBalancer
