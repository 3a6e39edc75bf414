"""The load-balancer protocol: what confluo asks of HAProxy, nginx, Apache or an operator's own commands.

Administrative state (what confluo set) and health (what the load balancer's checks see) are read separately, and
every change is read back: an accepted command is not proof that the load balancer now routes differently.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from confluo.errors import ConfluoError, ExitCode
from confluo.inventory import Node
from confluo.waits import Deadline, poll

# Confluence Data Center needs sticky sessions: each user's requests on one node.
NOT_STICKY = (
    "Confluence needs sticky sessions, or a user's pages and edits switch between nodes, and every drain moves "
    "users at once"
)


class AdminState(enum.Enum):
    READY = "ready"  # in the pool
    DRAIN = "drain"  # no new sessions; existing ones (sticky) still served
    MAINT = "maint"  # out of the pool
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ServerState:
    server: str  # the node's name in the load balancer
    admin: AdminState
    healthy: bool | None  # None: this load balancer cannot tell
    sessions: int | None  # current sessions on the server, where the load balancer counts them
    detail: str = ""  # the load balancer's own words (`DOWN 1/2`, `Init Drn Ok`), for messages and the live view


class LoadBalancerError(ConfluoError):
    """The load balancer could not be reached, refused a change, or does not know the server."""

    exit_code = ExitCode.FAILED_AFTER_CHANGES


class ChangeNotApplied(LoadBalancerError):
    """A change was accepted (or seemed to be) but reading the state back shows it did not take effect."""


class LoadBalancer(Protocol):
    def state(self, server: str) -> ServerState: ...

    def drain(self, server: str) -> None: ...

    def maint(self, server: str) -> None: ...

    def ready(self, server: str) -> None: ...

    def describe(self, server: str, target: AdminState) -> str:
        """The change as a command line (or request) an operator could run by hand, for `confluo plan`."""
        ...

    def warnings(self) -> tuple[str, ...]:
        """What in the load balancer's set-up could undo confluo's changes behind its back (none: empty)."""
        ...


@runtime_checkable
class Weighted(Protocol):
    """A load balancer that can bring a server back gradually (HAProxy's `set server ... weight N%`)."""

    def weight(self, server: str, percent: int) -> None: ...


@runtime_checkable
class Growable(Protocol):
    """A load balancer confluo can add a server to, out of the pool: a line in its configuration file (nginx's
    upstream file, HAProxy's configuration), never a runtime addition alone, which the next reload would lose."""

    def add_server(self, server: str, like: str) -> None:
        """`server` added out of the pool, set up as `like` (the node it was copied from) is."""
        ...

    def describe_add(self, server: str, like: str) -> str:
        """The addition as an operator would make it by hand; LoadBalancerError when confluo cannot make it (the
        plan then says why, and how to add the server ahead)."""
        ...


def serving(state: ServerState) -> bool:
    """In the pool and not failing its health checks: the load balancer sends it traffic."""
    return state.admin is AdminState.READY and state.healthy is not False


def pool_view(lb: LoadBalancer | None, nodes: Sequence[Node]) -> dict[str, bool] | None:
    """Node name → whether the load balancer sends it traffic; a server it cannot read counts as not (None: no
    load balancer)."""
    if lb is None:
        return None
    view = {}
    for node in nodes:
        try:
            view[node.name] = serving(lb.state(node.balancer_server))
        except ConfluoError:
            view[node.name] = False
    return view


def check_applied(where: str, observed: ServerState, *accepted: AdminState) -> ServerState:
    """`observed` after a change; ChangeNotApplied unless its admin state is one of `accepted`."""
    if observed.admin in accepted:
        return observed
    wanted = " or ".join(state.value for state in accepted)
    detail = f" ({observed.detail})" if observed.detail else ""
    raise ChangeNotApplied(
        f"{where}: server {observed.server} is {observed.admin.value}{detail} after the change, expected {wanted}",
        hint="the load balancer did not take the change; check its configuration and logs before going on",
    )


def wait_until_idle(lb: LoadBalancer, server: str, deadline: Deadline, *, interval: float = 1.0) -> ServerState:
    """Poll until the server has no sessions; at once when the load balancer cannot count them (sessions None).

    TimedOut (from confluo.waits) carries the last state: a drain that does not finish must fail closed.
    """
    return poll(
        lambda: lb.state(server),
        until=lambda state: state.sessions is None or state.sessions == 0,
        deadline=deadline,
        interval=interval,
    )
