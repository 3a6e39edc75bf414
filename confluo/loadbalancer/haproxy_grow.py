"""HAProxy that confluo can add a server to (add-node): a line in its configuration file, and a reload that
brings the server up out of the pool.

The runtime API's `add server` cannot be used: HAProxy refuses `cookie` on a dynamic server, and Confluence needs
sticky sessions; a server added at runtime would also be gone at the next reload. So, as an administrator would:

    the donor's `server` line copied (the new name, address and cookie) into FILE, `haproxy -c -f FILE` on it
    (refused: the previous file is back, nothing reloaded); `show servers state` saved to the server-state-file
    with a row for the new server in maintenance; the reload command; then the runtime API must list the server,
    in maintenance (not seen: the previous file is back)

A configuration line alone would put the server in the pool at the reload; the state-file row is what keeps it
out until `ready`, and the servers drained or in maintenance stay so, as the state file is meant to keep them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from confluo.loadbalancer.base import AdminState, ChangeNotApplied, Growable, LoadBalancerError, check_applied
from confluo.loadbalancer.haproxy import Channel, HAProxy, parse_servers_state
from confluo.loadbalancer.haproxy_text import state_file_path, state_with_new_server, with_server
from confluo.loadbalancer.host_files import HostFiles
from confluo.waits import SYSTEM_CLOCK, Clock, Deadline, TimedOut, poll


class GrowableHAProxy(HAProxy):
    """`files`: the HAProxy host's files and commands; `addresses`: server name → `host:port` of its node."""

    def __init__(
        self,
        channel: Channel,
        backend: str,
        *,
        config_path: str,
        files: HostFiles,
        addresses: Mapping[str, str],
        test_command: Sequence[str],
        reload_command: Sequence[str],
        reload_seconds: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(channel, backend, config_path=config_path, clock=clock)
        self.config = config_path
        self.files = files
        self.addresses = dict(addresses)
        self.test_command = tuple(test_command)
        self.reload_command = tuple(reload_command)
        self.reload_seconds = reload_seconds

    def describe_add(self, server: str, like: str) -> str:
        self._state_file(self.files.read(self.config))  # refused at plan time when the reload would lose it
        return (
            f"add `server {server} {self._address(server)} …` (the parameters of {like}'s line, its own cookie) to "
            f"backend {self.backend} of {self.config}, {self.files.line(self.test_command)}, save the servers' "
            f"states with {server} in maintenance, then {self.files.line(self.reload_command)}  "
            f"# on {self.files.transport.node}"
        )

    def add_server(self, server: str, like: str) -> None:
        before = self.files.read(self.config)
        state_file = self._state_file(before)
        address = self._address(server)
        after = with_server(before, self.backend, server, address, like, f"{server}, added by confluo add-node",
                            self.channel.where)  # fmt: skip
        states = state_with_new_server(self.channel.ask("show servers state"), self.backend, server, address, like)
        backup = (
            None if after == before else self.files.replace_tested(self.config, after, self.test_command, "HAProxy")
        )
        try:
            self.files.write(state_file, states)
            self._reload(server)
        except LoadBalancerError:  # HAProxy still runs the previous file: the file says so again
            if backup is not None:
                self.files.restore(self.config, backup)
            raise
        if backup is not None:
            self.files.discard(backup)
        check_applied(f"{self.channel.where} backend {self.backend}", self.state(server), AdminState.MAINT)

    def _address(self, server: str) -> str:
        address = self.addresses.get(server)
        if address is None or ":" not in address:
            raise LoadBalancerError(f"{self.channel.where}: no address with a port for server {server}")
        return address

    def _state_file(self, config: str) -> str:
        path = state_file_path(config)
        if path is None:
            raise LoadBalancerError(
                f"{self.config} has no server-state-file loaded with `load-server-state-from-file global`: a new "
                "server could not be brought up out of the pool by a reload"
            )
        return path

    def _reload(self, server: str) -> None:
        self.files.run_line(self.files.line(self.reload_command))

        def listed() -> bool:
            try:
                return server in parse_servers_state(self.channel.ask(f"show servers state {self.backend}"))
            except LoadBalancerError:
                return False  # the old process gone, the new one not listening yet

        try:
            poll(listed, until=bool, deadline=Deadline.after(self.clock, self.reload_seconds), interval=0.1)
        except TimedOut as exc:
            raise ChangeNotApplied(
                f"{self.channel.where}: HAProxy does not list server {self.backend}/{server} "
                f"{self.reload_seconds:.0f} s after `{self.files.line(self.reload_command)}`, so it still runs the "
                "previous configuration; the previous file is back",
                hint="see HAProxy's log and the reload command in the inventory, then run confluo again",
            ) from exc


if TYPE_CHECKING:  # mypy proves the adapter fills the protocol
    _grows: type[Growable] = GrowableHAProxy
