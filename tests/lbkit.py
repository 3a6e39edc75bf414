"""Real load balancers for the adapter tests: tiny backends, HAProxy, nginx and Apache httpd on loopback.

    with backends(3) as pool, haproxy(workdir, pool) as lb:
        pool.reset(); send(lb.url, 30); pool.hits()      # {"n1": 10, "n2": 10, "n3": 10}, counted by the backends

Every process is started in the foreground (so the test owns its pid) and stopped in a `finally`. Every folder is
world-traversable: nginx's and Apache's workers run as nobody.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from confluo.waits import SYSTEM_CLOCK, Deadline, poll

LOOPBACK = "127.0.0.1"
APACHE_MODULES = Path("/usr/lib/apache2/modules")
HEALTH = "/health"
SLOW = "/slow"


def require(binary: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        pytest.skip(f"{binary} is not installed")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, seconds: float = 10.0, process: subprocess.Popen[bytes] | None = None) -> None:
    def accepts() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited {process.returncode} before listening on {port}")
        with socket.socket() as conn:
            conn.settimeout(0.5)
            return conn.connect_ex((LOOPBACK, port)) == 0

    poll(accepts, until=bool, deadline=Deadline.after(SYSTEM_CLOCK, seconds), interval=0.05)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="confluo-lb-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ backends


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        return None  # health checks hang up before reading the answer


@dataclass
class Backend:
    name: str
    server: ThreadingHTTPServer
    hits: int = 0
    release: threading.Event = field(default_factory=threading.Event)  # lets held /slow requests finish
    held: int = 0

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"


class Pool:
    def __init__(self, members: Sequence[Backend]) -> None:
        self.members = list(members)
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            for backend in self.members:
                backend.hits = 0

    def hits(self) -> dict[str, int]:
        with self.lock:
            return {backend.name: backend.hits for backend in self.members}

    def __getitem__(self, name: str) -> Backend:
        return next(backend for backend in self.members if backend.name == name)


def _handler(backend: Backend, pool: Pool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != HEALTH:
                with pool.lock:
                    backend.hits += 1
            if self.path == SLOW:
                with pool.lock:
                    backend.held += 1
                backend.release.wait(20)
            body = backend.name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@contextlib.contextmanager
def backends(count: int) -> Iterator[Pool]:
    pool = Pool([])
    threads = []
    try:
        for index in range(1, count + 1):
            backend = Backend(f"n{index}", QuietServer((LOOPBACK, 0), BaseHTTPRequestHandler))
            backend.server.RequestHandlerClass = _handler(backend, pool)
            pool.members.append(backend)
            thread = threading.Thread(target=backend.server.serve_forever, kwargs={"poll_interval": 0.05})
            thread.start()
            threads.append(thread)
        yield pool
    finally:
        for backend in pool.members:
            backend.release.set()
            backend.server.shutdown()
            backend.server.server_close()
        for thread in threads:
            thread.join(5)


def send(url: str, count: int) -> list[str]:
    """`count` requests through the load balancer, each on a new connection; the backends' answers."""
    answers = []
    for _ in range(count):
        with httpx.Client(timeout=5.0) as client:
            answers.append(client.get(url + "/").text)
    return answers


# --------------------------------------------------------------------------------------------- processes


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    url: str
    dir: Path
    extra: dict[str, str] = field(default_factory=dict)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def _running(argv: Sequence[str], port: int, directory: Path, **extra: str) -> Iterator[Running]:
    log = (directory / "stdout.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process=process)
        yield Running(process, f"http://{LOOPBACK}:{port}", directory, dict(extra))
    finally:
        _stop(process)
        log.close()


def haproxy_config(
    directory: Path, pool: Pool, port: int, *, level: str, state_file: bool, track: dict[str, str]
) -> str:
    check = "check inter 100ms fall 1 rise 1"
    servers = [
        f"    server {b.name} {b.address} cookie {b.name} " + (f"track {track[b.name]}" if b.name in track else check)
        for b in pool.members
    ]
    keep = [f"    server-state-file {directory / 'server-state'}"] if state_file else []
    load = ["    load-server-state-from-file global"] if state_file else []
    return "\n".join(
        [
            "global",
            f"    stats socket {directory / 'admin.sock'} mode 600 level {level}",
            *keep,
            "defaults",
            "    mode http",
            *load,
            "    timeout connect 2s",
            "    timeout client 30s",
            "    timeout server 30s",
            "frontend web",
            f"    bind {LOOPBACK}:{port}",
            "    default_backend app",
            "backend app",
            "    balance roundrobin",
            "    cookie SERVERID insert indirect nocache",  # sticky sessions, as Confluence needs
            f"    option httpchk GET {HEALTH}",
            *servers,
            "",
        ]
    )


@contextlib.contextmanager
def haproxy(
    directory: Path, pool: Pool, *, level: str = "admin", state_file: bool = True, track: dict[str, str] | None = None
) -> Iterator[Running]:
    """`track`: server → the server whose state it follows (HAProxy's `track`)."""
    binary = require("haproxy")
    port = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(haproxy_config(directory, pool, port, level=level, state_file=state_file, track=track or {}))
    argv = [binary, "-db", "-f", str(config)]
    admin = directory / "admin.sock"
    with _running(argv, port, directory, socket=str(admin), config=str(config)) as lb:
        poll(admin.exists, until=bool, deadline=Deadline.after(SYSTEM_CLOCK, 10), interval=0.05)
        yield lb


def nginx_files(directory: Path, pool: Pool, port: int) -> tuple[Path, Path]:
    """The main configuration and the upstream file it includes (with a second upstream nobody may touch)."""
    temp = directory / "temp"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / sub).mkdir(parents=True, exist_ok=True)
        os.chown(temp / sub, pwd.getpwnam("nobody").pw_uid, -1)
    upstream = directory / "upstreams.conf"
    servers = "\n".join(f"    server {b.address} weight=1 max_fails=0;  # {b.name}" for b in pool.members)
    upstream.write_text(
        "# confluence nodes\n"
        f"upstream confluence {{\n{servers}\n}}\n\n"
        f"upstream other {{\n    server {pool.members[0].address};\n}}\n"
    )
    main = directory / "nginx.conf"
    main.write_text(
        "user nobody nogroup;\nworker_processes 1;\n"
        f"pid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'} info;\n"
        "events { worker_connections 64; }\nhttp {\n"
        f"    access_log off;\n    client_body_temp_path {temp / 'body'};\n    proxy_temp_path {temp / 'proxy'};\n"
        f"    fastcgi_temp_path {temp / 'fastcgi'};\n    uwsgi_temp_path {temp / 'uwsgi'};\n"
        f"    scgi_temp_path {temp / 'scgi'};\n    include {upstream};\n"
        f"    server {{\n        listen {LOOPBACK}:{port};\n"
        "        location / { proxy_pass http://confluence; }\n    }\n}\n"
    )
    return main, upstream


def nginx_argv(binary: str, directory: Path, main: Path, *args: str) -> list[str]:
    return [binary, "-p", str(directory), "-c", str(main), "-e", str(directory / "error.log"), *args]


@contextlib.contextmanager
def nginx(directory: Path, pool: Pool) -> Iterator[Running]:
    binary = require("nginx")
    port = free_port()
    main, upstream = nginx_files(directory, pool, port)
    argv = nginx_argv(binary, directory, main, "-g", "daemon off;")
    with _running(argv, port, directory, main=str(main), upstream=str(upstream), binary=binary) as lb:
        yield lb


def apache_config(directory: Path, pool: Pool, port: int, *, sticky: bool = True) -> str:
    modules = [
        ("mpm_event_module", "mod_mpm_event.so"),
        ("authz_core_module", "mod_authz_core.so"),
        ("authz_host_module", "mod_authz_host.so"),
        ("slotmem_shm_module", "mod_slotmem_shm.so"),
        ("proxy_module", "mod_proxy.so"),
        ("proxy_http_module", "mod_proxy_http.so"),
        ("proxy_balancer_module", "mod_proxy_balancer.so"),
        ("lbmethod_byrequests_module", "mod_lbmethod_byrequests.so"),
    ]
    members = [f'    BalancerMember "http://{b.address}" route={b.name}' for b in pool.members]
    return "\n".join(
        [
            f"ServerRoot {directory}",
            f"Listen {LOOPBACK}:{port}",
            f"PidFile {directory / 'httpd.pid'}",
            f"ErrorLog {directory / 'error.log'}",
            f"DefaultRuntimeDir {directory}",
            *(f"LoadModule {name} {APACHE_MODULES / file}" for name, file in modules),
            "User nobody",
            "Group nogroup",
            f"ServerName {LOOPBACK}",
            '<Proxy "balancer://confluence">',
            *members,
            *(["    ProxySet stickysession=ROUTEID"] if sticky else []),
            "</Proxy>",
            '<Location "/balancer-manager">',
            "    SetHandler balancer-manager",
            f"    Require ip {LOOPBACK}",
            "</Location>",
            'ProxyPass "/balancer-manager" "!"',
            'ProxyPass "/" "balancer://confluence/"',
            "",
        ]
    )


@contextlib.contextmanager
def apache(directory: Path, pool: Pool, *, sticky: bool = True) -> Iterator[Running]:
    binary = require("apache2")
    if not (APACHE_MODULES / "mod_proxy_balancer.so").exists():
        pytest.skip(f"mod_proxy_balancer is not in {APACHE_MODULES}")
    port = free_port()
    config = directory / "httpd.conf"
    config.write_text(apache_config(directory, pool, port, sticky=sticky))
    with _running([binary, "-f", str(config), "-DFOREGROUND"], port, directory) as lb:
        yield lb


@contextlib.contextmanager
def held_request(pool: Pool, lb: Running) -> Iterator[str]:
    """A slow request through the load balancer, held by its backend: yields that backend's name."""
    slow = threading.Thread(target=lambda: httpx.get(lb.url + SLOW, timeout=20))
    slow.start()
    try:
        yield poll(
            lambda: [b.name for b in pool.members if b.held],
            until=bool,
            deadline=Deadline.after(SYSTEM_CLOCK, 5),
            interval=0.02,
        )[0]
    finally:
        for backend in pool.members:
            backend.release.set()
        slow.join(10)
