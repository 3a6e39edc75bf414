"""HAProxy's configuration and server-state file as text: a backend's `server` lines found, one added as an
administrator copies a line, and the state file's row that brings a new server up out of the pool after a reload.
Every other byte of the administrator's file stays as it was."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from confluo.loadbalancer.base import LoadBalancerError

# The keywords that open a section; a backend's lines run until the next one.
SECTIONS = frozenset(
    {"global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist", "cache", "program",
     "http-errors", "ring", "mailers", "crt-store", "traces"}
)  # fmt: skip
FORCED_MAINT = 0x01  # srv_admin_state: maintenance set through the runtime API, which `state ready` clears


@dataclass(frozen=True)
class ServerLine:
    name: str
    address: str
    parameters: tuple[str, ...]
    index: int  # its line's index in the file


def _words(line: str) -> list[str]:
    return line.split("#", 1)[0].split()


def servers_of(text: str, backend: str) -> list[ServerLine] | None:
    """The `server` lines of `backend NAME` (or `listen NAME`); None when the file has no such section."""
    found: list[ServerLine] | None = None
    inside = False
    for index, line in enumerate(text.splitlines()):
        words = _words(line)
        if not words:
            continue
        if words[0] in SECTIONS:
            inside = words[0] in ("backend", "listen") and words[1:2] == [backend]
            found = found if found is not None or not inside else []
        elif inside and found is not None and words[0] == "server" and len(words) >= 3:
            found.append(ServerLine(words[1], words[2], tuple(words[3:]), index))
    return found


def _backend_directives(text: str, backend: str) -> list[list[str]]:
    directives: list[list[str]] = []
    inside = False
    for line in text.splitlines():
        words = _words(line)
        if words and words[0] in SECTIONS:
            inside = words[0] in ("backend", "listen") and words[1:2] == [backend]
        elif words and inside:
            directives.append(words)
    return directives


def stickiness_problem(text: str, backend: str) -> str | None:
    """Why the backend's sessions are not sticky (no `cookie`, `balance source` or `stick on`; servers without a
    cookie value under `cookie`); None when they are, or when the file has no such backend."""
    directives = _backend_directives(text, backend)
    if not directives:
        return None
    keywords = {words[0] for words in directives}
    if "cookie" in keywords:
        bare = [w[1] for w in directives if w[0] == "server" and len(w) > 1 and "cookie" not in w[3:]]
        return f"servers {', '.join(bare)} have no `cookie` value, so their sessions are not sticky" if bare else None
    if "stick" in keywords or any(words[:2] == ["balance", "source"] for words in directives):
        return None
    return "has no `cookie`, `balance source` or `stick on` for its servers"


def _copied(parameters: Sequence[str], server: str, host: str, like_host: str) -> list[str]:
    """The donor's parameters for the new server: its own cookie, no forced id, its own check address."""
    copied: list[str] = []
    words = iter(parameters)
    for word in words:
        value = next(words, None) if word in ("cookie", "id", "addr") else None
        if word == "id":
            continue  # an `id` is unique within the backend
        if word == "cookie":
            copied += ["cookie", server]  # sticky sessions must name the new server, not the donor
        elif word == "addr":
            copied += ["addr", host if value == like_host else (value or host)]
        else:
            copied.append(word)
    return copied


def with_server(text: str, backend: str, server: str, address: str, like: str, note: str, where: str) -> str:
    """The file's text with `server NAME ADDRESS …`, the parameters those of `like`'s line, after the backend's
    last server line with `# note`; unchanged when the backend already has the server."""
    servers = servers_of(text, backend)
    if servers is None:
        raise LoadBalancerError(f"{where}: there is no `backend {backend}` section")
    if any(line.name == server for line in servers):
        return text
    model = next((line for line in servers if line.name == like), None)
    if model is None:
        known = ", ".join(line.name for line in servers) or "none"
        raise LoadBalancerError(f"{where}: backend {backend} has no server {like} (its servers: {known})")
    lines = text.splitlines(keepends=True)
    model_line = lines[model.index]
    indent = model_line[: len(model_line) - len(model_line.lstrip())]
    host, like_host = address.rsplit(":", 1)[0], model.address.rsplit(":", 1)[0]
    words = ["server", server, address, *_copied(model.parameters, server, host, like_host)]
    last = servers[-1].index
    if not lines[last].endswith("\n"):
        lines[last] += "\n"
    lines.insert(last + 1, f"{indent}{' '.join(words)}  # {note}\n")
    return "".join(lines)


def state_file_path(text: str) -> str | None:
    """Where `server-state-file` (under `server-state-base`) keeps the servers' states across a reload, when the
    configuration loads it from there (`load-server-state-from-file global`); None otherwise."""
    directives = [_words(line) for line in text.splitlines()]
    settings = {words[0]: words[1] for words in directives if len(words) >= 2}
    loads_global = any(words[:2] == ["load-server-state-from-file", "global"] for words in directives)
    path = settings.get("server-state-file")
    if path is None or not loads_global:
        return None
    base = settings.get("server-state-base")
    return path if path.startswith("/") or base is None else posixpath.join(base, path)


def state_with_new_server(state: str, backend: str, server: str, address: str, like: str) -> str:
    """`show servers state` with a row for `server`, copied from `like`'s, in forced maintenance: loaded at the
    reload, it brings the server up out of the pool (from its configuration line alone HAProxy would route to
    it at once)."""
    lines = state.splitlines()
    header = next((line for line in lines if line.startswith("#")), None)
    if header is None:
        raise LoadBalancerError(f"`show servers state` gave no header: {state.strip()[:80]!r}")
    columns = header.lstrip("# ").split()
    rows = [dict(zip(columns, line.split(), strict=True)) for line in lines if len(line.split()) == len(columns)]
    ours = [row for row in rows if row.get("be_name") == backend]
    model = next((row for row in ours if row["srv_name"] == like), None)
    if model is None:
        raise LoadBalancerError(f"`show servers state` has no server {backend}/{like}")
    host, port = address.rsplit(":", 1)
    new = {**model, **_new_row_values(ours, server, host, port)}
    return "\n".join([*lines, " ".join(new[column] for column in columns)]) + "\n"


def _new_row_values(rows: Sequence[Mapping[str, str]], server: str, host: str, port: str) -> dict[str, str]:
    next_id = max((int(row["srv_id"]) for row in rows if row["srv_id"].isdigit()), default=0) + 1
    values = {
        "srv_id": str(next_id), "srv_name": server, "srv_addr": host, "srv_op_state": "0",
        "srv_admin_state": str(FORCED_MAINT), "srv_time_since_last_change": "0", "srv_check_health": "0",
        "srv_f_forced_id": "0", "srv_fqdn": "-", "srv_port": port,
    }  # fmt: skip
    return {column: value for column, value in values.items() if any(column in row for row in rows)}
