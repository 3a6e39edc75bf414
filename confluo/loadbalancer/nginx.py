"""Open-source nginx: the node's `server` line in an upstream file gets `down` (or loses it), then nginx reloads.

nginx OSS has no runtime API and no soft drain: `drain` and `maint` both mark the server `down`, which stops new
requests at once; requests in flight finish in the old workers. The edit is made through a Transport so that a
bad configuration never reaches the running nginx:

    cp -p FILE FILE.confluo-new; write it; cp -p FILE FILE.confluo-old; mv FILE.confluo-new FILE
    nginx -t   → refused: mv FILE.confluo-old FILE (the previous file is back), raise; nginx never reloads
               → accepted: nginx -s reload; rm FILE.confluo-old once the reload is seen to have happened

nginx cannot report which configuration it runs, so the reload is proven by its workers: it worked when the
master (same pid) has new workers and every old one is gone or "shutting down" (which no longer accepts).
A reload not seen puts the previous file back, so that the file keeps saying what nginx runs (a later run must
not read `down` from a file nginx never loaded). The state is then read back from the file. Sessions cannot be
counted (`sessions=None`), health is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluo.loadbalancer.base import (
    NOT_STICKY,
    AdminState,
    ChangeNotApplied,
    Growable,
    LoadBalancer,
    LoadBalancerError,
    ServerState,
    check_applied,
)
from confluo.loadbalancer.host_files import HostFiles
from confluo.loadbalancer.nginx_text import STICKY, directives_of, find_server, with_down, with_server
from confluo.transport.base import Transport, quote_argv
from confluo.waits import SYSTEM_CLOCK, Clock, Deadline, TimedOut, poll


@dataclass(frozen=True)
class Workers:
    master: int
    serving: frozenset[int]  # workers that accept new connections (not "shutting down")


class NginxUpstream:
    """One upstream in one file on the load-balancer host. `addresses`: server name → `host:port` as written in
    the file (a name not in it is taken as the address itself). Commands are argv lists, run with `sudo -n`
    when `sudo`."""

    def __init__(
        self,
        transport: Transport,
        upstream_file: str,
        upstream: str,
        *,
        addresses: Mapping[str, str] | None = None,
        test_command: Sequence[str] = ("nginx", "-t"),
        reload_command: Sequence[str] = ("nginx", "-s", "reload"),
        pid_file: str = "/run/nginx.pid",
        sudo: bool = False,
        reload_seconds: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.transport = transport
        self.file = upstream_file
        self.upstream = upstream
        self.addresses = dict(addresses or {})
        self.test_command = tuple(test_command)
        self.reload_command = tuple(reload_command)
        self.pid_file = pid_file
        self.reload_seconds = reload_seconds
        self.clock = clock
        self.where = f"nginx on {transport.node}: {upstream_file}"
        self.files = HostFiles(transport, sudo=sudo, where=self.where)

    def state(self, server: str) -> ServerState:
        line = find_server(self._read(), self.upstream, self.address(server), self.where)
        down = line.down is not None
        admin = AdminState.MAINT if down else AdminState.READY
        return ServerState(server, admin, healthy=None, sessions=None, detail="down" if down else "up")

    def drain(self, server: str) -> None:
        self._mark(server, down=True)  # no soft drain in nginx OSS: the same as maint

    def maint(self, server: str) -> None:
        self._mark(server, down=True)

    def ready(self, server: str) -> None:
        self._mark(server, down=False)

    def address(self, server: str) -> str:
        return self.addresses.get(server, server)

    def describe(self, server: str, target: AdminState) -> str:
        change = "remove `down` from" if target is AdminState.READY else "add `down` to"
        return (
            f"{change} `server {self.address(server)}` in upstream {self.upstream} of {self.file}, then "
            f"{self._line(self.test_command)} && {self._line(self.reload_command)}  # on {self.transport.node}"
        )

    def warnings(self) -> tuple[str, ...]:
        directives = directives_of(self._read(), self.upstream)
        if not directives or any(words[0] in STICKY for words in directives):
            return ()
        return (f"{self.where}: upstream {self.upstream} has no `hash $cookie_JSESSIONID` or `ip_hash`: {NOT_STICKY}",)

    def add_server(self, server: str, like: str) -> None:
        """A `server` line for `server`, `down`, with the parameters of `like`'s line; nginx -t, reload."""
        before = self._read()
        note = f"{server}, added by confluo add-node"
        self._install(before, with_server(before, self.upstream, self.address(server), self.address(like), note,
                                          self.where))  # fmt: skip
        check_applied(self.where, self.state(server), AdminState.MAINT)

    def describe_add(self, server: str, like: str) -> str:
        return (
            f"add `server {self.address(server)} … down;` (the parameters of {self.address(like)}'s line) to "
            f"upstream {self.upstream} of {self.file}, then {self._line(self.test_command)} && "
            f"{self._line(self.reload_command)}  # on {self.transport.node}"
        )

    def _mark(self, server: str, *, down: bool) -> None:
        before = self._read()
        self._install(before, with_down(before, self.upstream, self.address(server), down, self.where))
        check_applied(self.where, self.state(server), AdminState.MAINT if down else AdminState.READY)

    def _install(self, before: str, after: str) -> None:
        """`after` in place of the file and loaded by nginx; the previous file back when it is not."""
        if after == before:
            return
        backup = self.files.replace_tested(self.file, after, self.test_command, "nginx")
        try:
            self._reload()
        except ChangeNotApplied:
            self.files.restore(self.file, backup)
            raise
        self.files.discard(backup)

    def _reload(self) -> None:
        before = self._workers()
        self.files.run_line(self._line(self.reload_command))

        def reloaded(now: Workers) -> bool:
            return now.master == before.master and bool(now.serving) and not now.serving & before.serving

        try:
            poll(self._workers, until=reloaded, deadline=Deadline.after(self.clock, self.reload_seconds), interval=0.1)
        except TimedOut as exc:
            raise ChangeNotApplied(
                f"{self.where}: nginx (master {before.master}) started no new workers within "
                f"{self.reload_seconds:.0f} s of the reload, so it still runs the previous configuration; the "
                "previous file is back",
                hint="see nginx's error log and the reload command in the inventory, then run confluo again",
            ) from exc

    def _workers(self) -> Workers:
        text = self.files.read(self.pid_file).strip()
        if not text.isdigit():
            raise LoadBalancerError(f"{self.where}: pid file {self.pid_file} holds {text[:40]!r}, not a pid")
        listing = self.files.run_line(quote_argv(["ps", "-o", "pid=,args=", "--ppid", text]), check=False).stdout
        serving = set()
        for row in listing.splitlines():
            pid, _, args = row.strip().partition(" ")
            if "worker process" in args and "shutting down" not in args and pid.isdigit():
                serving.add(int(pid))
        return Workers(int(text), frozenset(serving))

    def _read(self) -> str:
        return self.files.read(self.file)

    def _line(self, argv: Sequence[str]) -> str:
        return self.files.line(argv)


if TYPE_CHECKING:  # mypy proves the adapter fills the protocols
    _protocol: type[LoadBalancer] = NginxUpstream
    _grows: type[Growable] = NginxUpstream
