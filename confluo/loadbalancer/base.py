"""The load-balancer protocol: what confluo asks of HAProxy, nginx, Apache or an operator's own commands.

Administrative state (what confluo set) and health (what the load balancer's checks see) are read separately, and
every change is read back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


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


class LoadBalancer(Protocol):
    def state(self, server: str) -> ServerState: ...

    def drain(self, server: str) -> None: ...

    def maint(self, server: str) -> None: ...

    def ready(self, server: str) -> None: ...
