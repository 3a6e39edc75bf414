"""The configuration files of the lab's load balancers, as Atlassian's examples and typical production set-ups
write them: session affinity on JSESSIONID (Apache: its ROUTEID cookie), health checks on /status where the load
balancer has them, and no re-sending of a failed request to another server beyond each one's defaults.

`retries` (`confluo lab up --lb-retries`) turns the forgiving settings on: HAProxy's `redispatch` and `retry-on`,
nginx's `proxy_next_upstream ... http_502 http_503 non_idempotent`. They hide a stopping node from users, and
with them what a drain protects against.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BACKEND = "confluence"
APACHE_MODULES = Path("/usr/lib/apache2/modules")
_APACHE_MODULES = (
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("authz_host_module", "mod_authz_host.so"),
    ("headers_module", "mod_headers.so"),
    ("slotmem_shm_module", "mod_slotmem_shm.so"),
    ("proxy_module", "mod_proxy.so"),
    ("proxy_http_module", "mod_proxy_http.so"),
    ("proxy_balancer_module", "mod_proxy_balancer.so"),
    ("proxy_hcheck_module", "mod_proxy_hcheck.so"),
    ("lbmethod_byrequests_module", "mod_lbmethod_byrequests.so"),
)


@dataclass(frozen=True)
class Server:
    """A node as the balancer sees it: its name (the HAProxy server name, Apache route) and where its HTTP is."""

    name: str
    address: str
    port: int
    prepared: bool = False  # added ahead of its node (a spare host's): out of the pool until confluo puts it in


@dataclass(frozen=True)
class Files:
    """Where one balancer's files live (its own folder of the lab) and where it listens."""

    directory: Path
    address: str
    port: int
    socket_gid: int | None = None  # HAProxy: the group allowed to use the admin socket
    retries: bool = False


# ------------------------------------------------------------------------------------------------ HAProxy


def haproxy_config_text(files: Files, servers: Sequence[Server]) -> str:
    directory = files.directory
    socket_owner = f" gid {files.socket_gid}" if files.socket_gid is not None else ""
    # weight 100, so that a weight ramp (25%, 50%, ...) has steps to take: with the default 1, 25% is 0.
    # A prepared server is put in maintenance through the runtime API once HAProxy runs (as an administrator
    # would): a server `disabled` in the configuration cannot be made ready at runtime.
    server_lines = [f"    server {s.name} {s.address}:{s.port} cookie {s.name} weight 100" for s in servers]
    forgiving = [
        # A failed request is sent again to another server: a stopping node costs no error, drained or not.
        "    option redispatch 1",
        "    retry-on conn-failure empty-response response-timeout 503",
    ]
    return "\n".join(
        [
            "# written by confluo lab",
            "global",
            f"    stats socket {directory / 'haproxy.sock'} mode 660 level admin{socket_owner}",
            "    stats timeout 30s",
            f"    pidfile {directory / 'haproxy.pid'}",
            # A reload keeps MAINT/DRAIN only if `show servers state` was saved here first.
            f"    server-state-file {directory / 'server-state'}",
            "",
            "defaults",
            "    mode http",
            "    load-server-state-from-file global",
            "    timeout connect 2s",
            "    timeout client 30s",
            "    timeout server 30s",
            "    retries 3",  # HAProxy's default: a refused connection is tried again, on the same server
            *(forgiving if files.retries else []),
            "",
            "frontend confluence_http",
            f"    bind {files.address}:{files.port}",
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


# -------------------------------------------------------------------------------------------------- nginx


def nginx_config_text(files: Files) -> str:
    directory = files.directory
    temp = directory / "tmp"
    # Workers of a root master would run as "nobody"; they only need the temp folders.
    user_line = ["user nobody nogroup;"] if os.geteuid() == 0 else []
    # nginx's default is `error timeout`, and never a request that reached a node when it is not idempotent.
    forgiving = ["            proxy_next_upstream error timeout http_502 http_503 non_idempotent;"]
    return "\n".join(
        [
            "# written by confluo lab",
            *user_line,
            "worker_processes 1;",
            f"pid {directory / 'nginx.pid'};",
            f"error_log {directory / 'error.log'} info;",
            "events { worker_connections 256; }",
            "http {",
            f"    access_log {directory / 'access.log'};",
            f"    client_body_temp_path {temp / 'body'};",
            f"    proxy_temp_path {temp / 'proxy'};",
            f"    fastcgi_temp_path {temp / 'fastcgi'};",
            f"    uwsgi_temp_path {temp / 'uwsgi'};",
            f"    scgi_temp_path {temp / 'scgi'};",
            # Rewritten to mark a node `down` (open-source nginx has no runtime API), then reloaded.
            f"    include {directory / 'upstream.conf'};",
            "    server {",
            f"        listen {files.address}:{files.port};",
            "        location / {",
            f"            proxy_pass http://{BACKEND};",
            "            proxy_set_header Host $host;",
            *(forgiving if files.retries else []),
            "        }",
            "    }",
            "}",
            "",
        ]
    )


def nginx_upstream_text(servers: Sequence[Server], down: frozenset[str] = frozenset()) -> str:
    # Open-source nginx keeps a session on its node by hashing the session cookie (no sticky module).
    lines = [f"upstream {BACKEND} {{", "    hash $cookie_JSESSIONID consistent;"]
    for s in servers:
        marker = " down" if s.name in down or s.prepared else ""
        lines.append(f"    server {s.address}:{s.port} max_fails=1 fail_timeout=2s{marker};  # {s.name}")
    return "\n".join([*lines, "}", ""])


# ------------------------------------------------------------------------------------------------- Apache


def apache_config_text(files: Files, servers: Sequence[Server], *, user: str, group: str) -> str:
    """Debian's apache2 with mod_proxy_balancer: sticky on ROUTEID (Apache's documented recipe, the one
    Atlassian's Apache page uses), each member health-checked on /status, the balancer-manager on loopback."""
    directory = files.directory
    members = [
        f'    BalancerMember "http://{s.address}:{s.port}" route={s.name} retry=1 '
        "hcmethod=GET hcuri=/status hcinterval=1 hcpasses=1 hcfails=1" + (" status=+D" if s.prepared else "")
        for s in servers
    ]
    return "\n".join(
        [
            "# written by confluo lab",
            f"ServerRoot {directory}",
            f"Listen {files.address}:{files.port}",
            f"PidFile {directory / 'apache.pid'}",
            f"ErrorLog {directory / 'error.log'}",
            f"DefaultRuntimeDir {directory}",
            *(f"LoadModule {name} {APACHE_MODULES / file}" for name, file in _APACHE_MODULES),
            f"User {user}",
            f"Group {group}",
            f"ServerName {files.address}",
            "MaxConnectionsPerChild 0",
            'Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED',
            f'<Proxy "balancer://{BACKEND}">',
            *members,
            "    ProxySet stickysession=ROUTEID",
            "</Proxy>",
            '<Location "/balancer-manager">',
            "    SetHandler balancer-manager",
            "    Require ip 127.0.0.0/8",
            "</Location>",
            'ProxyPass "/balancer-manager" "!"',
            f'ProxyPass "/" "balancer://{BACKEND}/"',
            f'ProxyPassReverse "/" "balancer://{BACKEND}/"',
            "",
        ]
    )
