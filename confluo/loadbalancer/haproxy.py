"""HAProxy through its runtime API (the admin-level stats socket), on this machine or on the load-balancer host.

Each change is `set server <backend>/<server> state drain|maint|ready`; HAProxy answers an empty line when it
accepts one, and every change is then read back from `show servers state`. Sessions and the status string come
from `show stat` (CSV, read by its header). The socket cannot show the configuration, so the check that drained
servers survive a reload reads the configuration file itself.
"""

from __future__ import annotations

import csv
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from confluo.loadbalancer.base import (
    NOT_STICKY,
    AdminState,
    LoadBalancer,
    LoadBalancerError,
    ServerState,
    check_applied,
)
from confluo.loadbalancer.haproxy_text import stickiness_problem
from confluo.transport.base import Transport, TransportError, quote_argv
from confluo.waits import SYSTEM_CLOCK, Clock

# srv_admin_state bits (HAProxy's SRV_ADMF_*): forced, inherited (track), configured (`disabled`), DNS and
# hostname maintenance; forced and inherited drain.
MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
DRAIN_BITS = 0x08 | 0x10
OP_RUNNING = 2  # srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping


class Channel(Protocol):
    """One way to reach HAProxy: ask a runtime API command, read a file (the configuration) where HAProxy runs."""

    where: str

    def ask(self, command: str) -> str: ...

    def read(self, path: str) -> str: ...


class LocalSocket:
    """The admin socket on this machine (a Unix socket path)."""

    def __init__(self, path: str, *, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self.where = f"HAProxy at unix:{path}"

    def ask(self, command: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(self.path)
                conn.sendall(command.encode() + b"\n")
                chunks = []
                # Without `prompt`, HAProxy answers one command and closes the connection.
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise LoadBalancerError(f"{self.where}: cannot use the runtime API: {exc}") from exc
        return b"".join(chunks).decode(errors="replace")

    def read(self, path: str) -> str:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError as exc:
            raise LoadBalancerError(f"{self.where}: cannot read {path}: {exc}") from exc


class SocatOverTransport:
    """The admin socket on the load-balancer host: `socat stdio unix-connect:SOCK`, the command on stdin."""

    def __init__(
        self, transport: Transport, path: str, *, sudo: bool = False, socat: str = "socat", timeout: float = 30.0
    ) -> None:
        self.transport = transport
        self.path = path
        self.prefix = ("sudo", "-n") if sudo else ()
        self.socat = socat
        self.timeout = timeout
        self.where = f"HAProxy at {transport.node}:unix:{path}"

    def command_line(self) -> str:
        return quote_argv([*self.prefix, self.socat, "stdio", f"unix-connect:{self.path}"])

    def ask(self, command: str) -> str:
        return self._run(self.command_line(), (command + "\n").encode())

    def read(self, path: str) -> str:
        return self._run(quote_argv([*self.prefix, "cat", "--", path]), None)

    def _run(self, line: str, stdin: bytes | None) -> str:
        try:
            result = self.transport.run(line, stdin=stdin, timeout=self.timeout, check=False)
        except TransportError as exc:
            raise LoadBalancerError(f"{self.where}: {exc.message}") from exc
        if not result.ok:
            raise LoadBalancerError(f"{self.where}: `{line}` exited {result.exit_status}: {result.tail(3)}")
        return result.stdout


@dataclass(frozen=True)
class ServersStateRow:
    """One server of `show servers state <backend>`."""

    name: str
    op_state: int
    admin_bits: int
    user_weight: int
    initial_weight: int


def parse_servers_state(text: str) -> dict[str, ServersStateRow]:
    """`show servers state` (format 1) → rows by server name. The header line names the columns."""
    columns: list[str] = []
    rows: dict[str, ServersStateRow] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            columns = line.lstrip("# ").split()
            continue
        fields = line.split()
        if not columns or len(fields) != len(columns):
            continue  # the format version line, blank lines
        row = dict(zip(columns, fields, strict=True))
        rows[row["srv_name"]] = ServersStateRow(
            name=row["srv_name"],
            op_state=int(row["srv_op_state"]),
            admin_bits=int(row["srv_admin_state"]),
            user_weight=int(row["srv_uweight"]),
            initial_weight=int(row["srv_iweight"]),
        )
    return rows


def parse_stat(text: str, backend: str) -> dict[str, dict[str, str]]:
    """`show stat` CSV → {server name: {column: value}} for one backend, by the `# pxname,svname,…` header."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    reader = csv.DictReader([lines[0][2:], *lines[1:]])
    return {row["svname"]: row for row in reader if row.get("pxname") == backend}


def admin_state(bits: int) -> AdminState:
    if bits & MAINT_BITS:
        return AdminState.MAINT
    if bits & DRAIN_BITS:
        return AdminState.DRAIN
    return AdminState.READY


def state_file_warnings(config_text: str, config_path: str) -> tuple[str, ...]:
    """What in the configuration lets a reload or the agent undo a drain; empty when nothing does."""
    directives = [line.split("#", 1)[0].split() for line in config_text.splitlines()]
    names = {words[0] for words in directives if words}
    loads = [words for words in directives if words and words[0] == "load-server-state-from-file"]
    problems = []
    if "server-state-file" not in names or not any(len(w) > 1 and w[1] != "none" for w in loads):
        problems.append(
            f"{config_path} has no server-state-file with load-server-state-from-file: a reload of HAProxy would "
            "put drained and maintenance servers back in the pool"
        )
    if any("agent-check" in words for words in directives):
        problems.append(
            f"{config_path} uses agent-check: an agent answering `ready` would undo confluo's drain and maint"
        )
    return tuple(problems)


class HAProxy:
    """One backend of one HAProxy. `config_path`: the configuration file, to check it keeps states on reload."""

    def __init__(
        self, channel: Channel, backend: str, *, config_path: str | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        _check_name(backend, "backend")
        self.channel = channel
        self.backend = backend
        self.config_path = config_path
        self.clock = clock

    def state(self, server: str) -> ServerState:
        row = self._row(server)
        stat = parse_stat(self.channel.ask("show stat"), self.backend).get(server, {})
        sessions = stat.get("scur", "")
        admin = admin_state(row.admin_bits)
        return ServerState(
            server=server,
            admin=admin,
            # In maintenance HAProxy stops checking the server and shows it stopped: its health is unknown.
            healthy=None if admin is AdminState.MAINT else row.op_state == OP_RUNNING,
            sessions=int(sessions) if sessions.isdigit() else None,
            detail=stat.get("status", ""),
        )

    def drain(self, server: str) -> None:
        self._set_state(server, AdminState.DRAIN)

    def maint(self, server: str) -> None:
        self._set_state(server, AdminState.MAINT)

    def ready(self, server: str) -> None:
        self._set_state(server, AdminState.READY)

    def weight(self, server: str, percent: int) -> None:
        """Set the server's weight to `percent` of its configured weight (a gradual return after `ready`)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"weight percent must be 0..100, not {percent}")
        self._row(server)
        self._ask_change(f"set server {self.backend}/{server} weight {percent}%")
        row = self._row(server)
        # HAProxy truncates (weight 10 at 25% is 2, at 1% is 0), as seen on 2.6.
        expected = row.initial_weight * percent // 100
        if row.user_weight != expected:
            raise LoadBalancerError(
                f"{self.channel.where}: server {self.backend}/{server} has weight {row.user_weight} after "
                f"`weight {percent}%`, expected {expected}"
            )

    def ramp(self, server: str, percents: Sequence[int] = (25, 50, 100), *, pause: float = 5.0) -> None:
        """Raise the weight step by step, pausing between steps, so a cold node is not flooded at once."""
        for index, percent in enumerate(percents):
            if index:
                self.clock.sleep(pause)
            self.weight(server, percent)

    def describe(self, server: str, target: AdminState) -> str:
        command = self._state_command(server, target)
        if isinstance(self.channel, SocatOverTransport):
            return f"echo {quote_argv([command])} | {self.channel.command_line()}  # on {self.channel.transport.node}"
        if isinstance(self.channel, LocalSocket):
            return f"echo {quote_argv([command])} | socat stdio {quote_argv(['unix-connect:' + self.channel.path])}"
        return f"{command}  # {self.channel.where}"

    def warnings(self) -> tuple[str, ...]:
        if self.config_path is None:
            return (
                f"{self.channel.where}: no configuration path given, so confluo cannot check that a reload "
                "keeps drained servers out (server-state-file)",
            )
        text = self.channel.read(self.config_path)
        sticky = stickiness_problem(text, self.backend)
        found = [f"{self.config_path}: backend {self.backend} {sticky}: {NOT_STICKY}"] if sticky else []
        return (*state_file_warnings(text, self.config_path), *found)

    def _set_state(self, server: str, target: AdminState) -> None:
        self._row(server)  # a clear error for an unknown backend or server, before any change
        self._ask_change(self._state_command(server, target))
        check_applied(f"{self.channel.where} backend {self.backend}", self.state(server), target)

    def _state_command(self, server: str, target: AdminState) -> str:
        if target is AdminState.UNKNOWN:
            raise ValueError("cannot set a server to the unknown state")
        return f"set server {self.backend}/{server} state {target.value}"

    def _ask_change(self, command: str) -> None:
        answer = self.channel.ask(command).strip()
        if answer:
            raise LoadBalancerError(f"{self.channel.where}: HAProxy refused `{command}`: {answer}")

    def _row(self, server: str) -> ServersStateRow:
        _check_name(server, "server")
        answer = self.channel.ask(f"show servers state {self.backend}")
        rows = parse_servers_state(answer)
        if not rows and "#" not in answer:
            raise LoadBalancerError(f"{self.channel.where}: no backend {self.backend!r}: {answer.strip()}")
        if server not in rows:
            known = ", ".join(sorted(rows)) or "none"
            raise LoadBalancerError(
                f"{self.channel.where}: backend {self.backend!r} has no server {server!r} (its servers: {known})"
            )
        return rows[server]


_NAME = re.compile(r"[A-Za-z0-9_.:-]+")


def _check_name(value: str, what: str) -> None:
    # The runtime API splits its commands on spaces and `;`: a name must never carry a second command.
    if not _NAME.fullmatch(value):
        raise LoadBalancerError(f"invalid HAProxy {what} name {value!r}: only letters, digits and _.:- are allowed")


if TYPE_CHECKING:  # mypy proves the adapter fills the protocol
    _protocol: type[LoadBalancer] = HAProxy
