"""The load balancer in front of the lab's nodes: HAProxy (with its runtime API) or open-source nginx.

Both run from the OS packages as plain daemons whose every file lives in the lab's `lb/` folder; they are
started and stopped by pid. HAProxy health-checks `/status` and only sends traffic to a node that says
RUNNING; nginx has no active checks and only skips a node that refuses or answers 502/503.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from confluo.lab.hosts import LabError, read_pid, run, runs, terminate, wait_for_port

HAPROXY = "haproxy"
NGINX = "nginx"
KINDS = (HAPROXY, NGINX)
BACKEND = "confluence"
LB_PORT = 8080


@dataclass(frozen=True)
class Server:
    """A node as the balancer sees it: its name (the HAProxy server name) and where its HTTP listens."""

    name: str
    address: str
    port: int


@dataclass(frozen=True)
class Balancer:
    kind: str
    directory: Path
    address: str
    port: int = LB_PORT
    # Group allowed to use the HAProxy socket (the lab's node users), so an upgrade run can drain nodes.
    socket_gid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def config(self) -> Path:
        return self.directory / ("haproxy.cfg" if self.kind == HAPROXY else "nginx.conf")

    @property
    def pid_file(self) -> Path:
        return self.directory / f"{self.kind}.pid"

    @property
    def socket(self) -> Path | None:
        return self.directory / "haproxy.sock" if self.kind == HAPROXY else None

    @property
    def state_file(self) -> Path:
        return self.directory / "server-state"

    @property
    def upstream_file(self) -> Path:
        return self.directory / "upstream.conf"

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if runs(pid, str(self.config)) else None


# ------------------------------------------------------------------------------------------------ HAProxy


def haproxy_config_text(lb: Balancer, servers: Sequence[Server]) -> str:
    socket_owner = f" gid {lb.socket_gid}" if lb.socket_gid is not None else ""
    server_lines = [f"    server {s.name} {s.address}:{s.port} cookie {s.name}" for s in servers]
    return "\n".join(
        [
            "# written by confluo lab",
            "global",
            f"    stats socket {lb.socket} mode 660 level admin{socket_owner}",
            "    stats timeout 30s",
            f"    pidfile {lb.pid_file}",
            # A reload keeps MAINT/DRAIN only if `show servers state` was saved here first.
            f"    server-state-file {lb.state_file}",
            "",
            "defaults",
            "    mode http",
            "    load-server-state-from-file global",
            "    timeout connect 2s",
            "    timeout client 30s",
            "    timeout server 30s",
            # A node that just died, or closed the connection as it exited, costs no error: the request is
            # retried on another server (what Atlassian's docs expect of the load balancer during a stop).
            "    retries 3",
            "    option redispatch 1",
            "    retry-on conn-failure empty-response response-timeout 503",
            "",
            "frontend confluence_http",
            f"    bind {lb.address}:{lb.port}",
            f"    default_backend {BACKEND}",
            "",
            f"backend {BACKEND}",
            "    balance roundrobin",
            "    cookie JSESSIONID prefix nocache",
            "    option httpchk GET /status",
            "    http-check expect string RUNNING",
            "    default-server check inter 500ms fall 2 rise 1",
            *server_lines,
            "",
        ]
    )


def _start_haproxy(lb: Balancer, servers: Sequence[Server]) -> None:
    lb.config.write_text(haproxy_config_text(lb, servers))
    run([HAPROXY, "-c", "-q", "-f", lb.config])
    run([HAPROXY, "-D", "-q", "-f", lb.config])


def haproxy_command(socket_path: Path, command: str, timeout: float = 5.0) -> str:
    """One command over the runtime API socket; returns HAProxy's whole answer (it closes after it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(socket_path))
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


# srv_admin_state bits (HAProxy's SRV_ADMF_*): forced/inherited/config/resolver/hostname maintenance, drain.
_MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
_DRAIN_BITS = 0x08 | 0x10
_OPERATIONAL = {"0": "DOWN", "1": "STARTING", "2": "UP", "3": "STOPPING"}


def parse_servers_state(text: str) -> dict[str, str]:
    """`show servers state` → {server name: MAINT | DRAIN | UP | DOWN | STARTING | STOPPING}."""
    states = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or line.startswith("#") or not fields[0].isdigit():
            continue
        name, operational, admin = fields[3], fields[5], int(fields[6])
        if admin & _MAINT_BITS:
            states[name] = "MAINT"
        elif admin & _DRAIN_BITS:
            states[name] = "DRAIN"
        else:
            states[name] = _OPERATIONAL.get(operational, "UNKNOWN")
    return states


def haproxy_server_states(socket_path: Path, backend: str = BACKEND) -> dict[str, str]:
    return parse_servers_state(haproxy_command(socket_path, f"show servers state {backend}"))


def save_haproxy_state(lb: Balancer) -> None:
    """Write `show servers state` to the server-state-file, so a reload keeps MAINT and DRAIN."""
    if lb.socket is None:
        raise LabError(f"{lb.kind} has no runtime API; only HAProxy keeps server states")
    lb.state_file.write_text(haproxy_command(lb.socket, "show servers state"))


def set_haproxy_server_state(socket_path: Path, server: str, state: str, backend: str = BACKEND) -> None:
    """state: ready | drain | maint. HAProxy answers an empty line on success, an explanation otherwise."""
    answer = haproxy_command(socket_path, f"set server {backend}/{server} state {state}").strip()
    if answer:
        raise LabError(f"HAProxy refused `set server {backend}/{server} state {state}`: {answer}")


# -------------------------------------------------------------------------------------------------- nginx


def nginx_config_text(lb: Balancer) -> str:
    temp = lb.directory / "tmp"
    # Workers of a root master would run as "nobody"; they only need the temp folders.
    user_line = ["user nobody nogroup;"] if os.geteuid() == 0 else []
    return "\n".join(
        [
            "# written by confluo lab",
            *user_line,
            "worker_processes 1;",
            f"pid {lb.pid_file};",
            f"error_log {lb.directory / 'error.log'} info;",
            "events { worker_connections 256; }",
            "http {",
            f"    access_log {lb.directory / 'access.log'};",
            f"    client_body_temp_path {temp / 'body'};",
            f"    proxy_temp_path {temp / 'proxy'};",
            f"    fastcgi_temp_path {temp / 'fastcgi'};",
            f"    uwsgi_temp_path {temp / 'uwsgi'};",
            f"    scgi_temp_path {temp / 'scgi'};",
            # Rewritten to mark a node `down` (open-source nginx has no runtime API), then reloaded.
            f"    include {lb.upstream_file};",
            "    server {",
            f"        listen {lb.address}:{lb.port};",
            "        location / {",
            f"            proxy_pass http://{BACKEND};",
            "            proxy_set_header Host $host;",
            "            proxy_next_upstream error timeout http_502 http_503;",
            "        }",
            "    }",
            "}",
            "",
        ]
    )


def nginx_upstream_text(servers: Sequence[Server], down: frozenset[str] = frozenset()) -> str:
    lines = [f"upstream {BACKEND} {{"]
    for s in servers:
        marker = " down" if s.name in down else ""
        lines.append(f"    server {s.address}:{s.port} max_fails=1 fail_timeout=2s{marker};  # {s.name}")
    return "\n".join([*lines, "}", ""])


def _nginx(lb: Balancer, *args: str) -> list[str]:
    # Always the same -p/-c/-e: without them nginx looks for /run/nginx.pid and /var/log/nginx.
    return [
        NGINX,
        "-p",
        str(lb.directory),
        "-c",
        str(lb.config),
        "-e",
        str(lb.directory / "error.log"),
        *args,
    ]


def write_nginx_upstream(lb: Balancer, servers: Sequence[Server], down: frozenset[str] = frozenset()) -> None:
    draft = lb.upstream_file.with_suffix(".conf.new")
    draft.write_text(nginx_upstream_text(servers, down))
    draft.replace(lb.upstream_file)


def reload_nginx(lb: Balancer) -> None:
    """A bad configuration fails `-t` and the running one keeps serving."""
    run(_nginx(lb, "-t", "-q"))
    run(_nginx(lb, "-s", "reload"))


def _start_nginx(lb: Balancer, servers: Sequence[Server]) -> None:
    temp = lb.directory / "tmp"
    temp.mkdir(exist_ok=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / sub).mkdir(exist_ok=True)
        if os.geteuid() == 0:
            os.chown(temp / sub, _nobody_uid(), -1)
    lb.config.write_text(nginx_config_text(lb))
    write_nginx_upstream(lb, servers)
    run(_nginx(lb, "-t", "-q"))
    run(_nginx(lb))


def _nobody_uid() -> int:
    return pwd.getpwnam("nobody").pw_uid


# --------------------------------------------------------------------------------------------- lifecycle


def start(lb: Balancer, servers: Sequence[Server], timeout: float = 5.0) -> int:
    """Write the configuration, validate it, start the daemon and wait until it accepts connections."""
    lb.directory.mkdir(parents=True, exist_ok=True)
    if lb.kind == HAPROXY:
        _start_haproxy(lb, servers)
    elif lb.kind == NGINX:
        _start_nginx(lb, servers)
    else:
        raise LabError(f"unknown load balancer kind {lb.kind!r}; choose one of {', '.join(KINDS)}")
    if not wait_for_port(lb.address, lb.port, timeout):
        raise LabError(f"{lb.kind} does not accept connections on {lb.address}:{lb.port}; see {lb.directory}")
    pid = lb.pid()
    if pid is None:
        raise LabError(f"{lb.kind} started but its pid file {lb.pid_file} names no running {lb.kind}")
    return pid


def stop(lb: Balancer) -> None:
    pid = lb.pid()
    if pid is not None:
        terminate([pid], grace=2.0)
    with contextlib.suppress(OSError):
        lb.pid_file.unlink()
