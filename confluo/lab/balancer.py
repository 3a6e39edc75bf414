"""The load balancer in front of the lab's nodes: HAProxy (runtime API), open-source nginx, or Apache httpd
(mod_proxy_balancer with its balancer-manager).

Each runs from the OS packages as a plain daemon whose every file lives in the lab's `lb/` folder; it is started
and stopped by pid. Their configurations (balancer_configs) are the production kind: sticky sessions, health
checks on `/status` where the balancer has them, and no retry of a failed request on another server unless the
lab was started with `--lb-retries`.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shlex
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from confluo.lab.balancer_configs import (
    APACHE_MODULES,
    BACKEND,
    Files,
    Server,
    apache_config_text,
    haproxy_config_text,
    nginx_config_text,
    nginx_upstream_text,
)
from confluo.lab.hosts import LabError, read_pid, run, runs, terminate, wait_for_port

HAPROXY = "haproxy"
NGINX = "nginx"
APACHE = "apache"
KINDS = (HAPROXY, NGINX, APACHE)
LB_PORT = 8080
APACHE_BINARY = "apache2"  # Debian's httpd
_CONFIG = {HAPROXY: "haproxy.cfg", NGINX: "nginx.conf", APACHE: "httpd.conf"}

__all__ = ["BACKEND", "KINDS", "Balancer", "Server"]


@dataclass(frozen=True)
class Balancer:
    kind: str
    directory: Path
    address: str
    port: int = LB_PORT
    # Group allowed to use the HAProxy socket (the lab's node users), so an upgrade run can drain nodes.
    socket_gid: int | None = None
    retries: bool = False  # the forgiving settings (`--lb-retries`)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def files(self) -> Files:
        return Files(self.directory, self.address, self.port, self.socket_gid, self.retries)

    @property
    def config(self) -> Path:
        return self.directory / _CONFIG[self.kind]

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
    def reload_script(self) -> Path:
        """HAProxy: the lab's `systemctl reload haproxy` (checked, then a new process takes over from the old)."""
        return self.directory / "reload-haproxy"

    @property
    def upstream_file(self) -> Path:
        return self.directory / "upstream.conf"

    @property
    def manager_url(self) -> str | None:
        return f"{self.url}/balancer-manager" if self.kind == APACHE else None

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if runs(pid, str(self.config)) else None


# ------------------------------------------------------------------------------------------------ HAProxy


def _start_haproxy(lb: Balancer, servers: Sequence[Server]) -> None:
    lb.config.write_text(haproxy_config_text(lb.files, servers))
    config, pid_file = shlex.quote(str(lb.config)), shlex.quote(str(lb.pid_file))
    # As systemd's reload does: no state is saved here, that is the reloader's job (`show servers state`).
    lb.reload_script.write_text(
        f'#!/bin/sh\nset -e\n{HAPROXY} -c -q -f {config}\nexec {HAPROXY} -D -q -f {config} -sf "$(cat {pid_file})"\n'
    )
    lb.reload_script.chmod(0o755)
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


def nginx_argv(lb: Balancer, *args: str) -> list[str]:
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
    run(nginx_argv(lb, "-t", "-q"))
    run(nginx_argv(lb, "-s", "reload"))


def _start_nginx(lb: Balancer, servers: Sequence[Server]) -> None:
    temp = lb.directory / "tmp"
    temp.mkdir(exist_ok=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / sub).mkdir(exist_ok=True)
        if os.geteuid() == 0:
            os.chown(temp / sub, _nobody_uid(), -1)
    lb.config.write_text(nginx_config_text(lb.files))
    write_nginx_upstream(lb, servers)
    run(nginx_argv(lb, "-t", "-q"))
    run(nginx_argv(lb))


def _nobody_uid() -> int:
    return pwd.getpwnam("nobody").pw_uid


# ------------------------------------------------------------------------------------------------- Apache


def _start_apache(lb: Balancer, servers: Sequence[Server]) -> None:
    if not (APACHE_MODULES / "mod_proxy_balancer.so").exists():
        raise LabError(f"--lb apache needs Debian's apache2 (mod_proxy_balancer in {APACHE_MODULES})")
    # Its workers run as nobody; in a lab with node users, in their group, which may enter lb/.
    group = grp.getgrgid(lb.socket_gid).gr_name if lb.socket_gid is not None else "nogroup"
    user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() != 0:
        group = grp.getgrgid(os.getegid()).gr_name
    lb.config.write_text(apache_config_text(lb.files, servers, user=user, group=group))
    run([APACHE_BINARY, "-t", "-f", lb.config])
    run([APACHE_BINARY, "-f", lb.config, "-k", "start"])


# --------------------------------------------------------------------------------------------- lifecycle


def start(lb: Balancer, servers: Sequence[Server], timeout: float = 5.0) -> int:
    """Write the configuration, validate it, start the daemon and wait until it accepts connections."""
    lb.directory.mkdir(parents=True, exist_ok=True)
    if lb.kind == HAPROXY:
        _start_haproxy(lb, servers)
    elif lb.kind == NGINX:
        _start_nginx(lb, servers)
    elif lb.kind == APACHE:
        _start_apache(lb, servers)
    else:
        raise LabError(f"unknown load balancer kind {lb.kind!r}; choose one of {', '.join(KINDS)}")
    if not wait_for_port(lb.address, lb.port, timeout):
        raise LabError(f"{lb.kind} does not accept connections on {lb.address}:{lb.port}; see {lb.directory}")
    pid = lb.pid()
    waited_until = time.monotonic() + timeout
    while pid is None and time.monotonic() < waited_until:  # Apache writes its pid file after it listens
        time.sleep(0.05)
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
