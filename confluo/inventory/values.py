"""Checks of single values, each returning the value normalised or raising Invalid with the message to show.

Plain functions, with no schema library, so each rule can be read and tested on its own. Normalised means:
host names in lower case, IP addresses in their canonical form, URLs with a lower-case scheme and host and
no default port, paths absolute with `.`, `//` and a trailing slash removed.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import string
import urllib.parse
from pathlib import Path, PurePosixPath

from confluo.inventory.model import COMMAND_PLACEHOLDERS
from confluo.inventory.problems import describe, has_control_characters, shown

MAX_TEXT = 4096
MAX_HOST = 253
MAX_LABEL = 63


class Invalid(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def text(value: str, *, limit: int = MAX_TEXT) -> str:
    """Non-empty, without control characters or line breaks, and of a sane length."""
    if not value.strip():
        raise Invalid(f"expected a non-empty string, got {describe(value)}")
    if has_control_characters(value):
        raise Invalid(f"must not contain control characters, tabs or line breaks, got {shown(value)}")
    if len(value) > limit:
        raise Invalid(f"expected at most {limit} characters, got {len(value)}")
    return value


def matching(value: str, pattern: re.Pattern[str], expected: str, *, secret: bool = False) -> str:
    text(value)
    if not pattern.fullmatch(value):
        # A value that should name where a secret is may be the secret itself, pasted in the wrong place.
        got = " (the value is not shown: it may be the secret itself)" if secret else f", got {shown(value)}"
        raise Invalid(f"expected {expected}{got}")
    return value


def node_name(value: str) -> str:
    matching(value, NODE_NAME, "a node name (letters and digits, with . _ - inside; at most 64 characters)")
    if ".." in value:
        raise Invalid(f"a node name must not contain '..', got {shown(value)}")
    return value


NODE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?")
NODE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?")
SERVICE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}")
PROXY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")  # HAProxy, nginx and Apache names
SSH_ALIAS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@%+-]{0,252}")  # never a leading '-': it would read as an option
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_HOST_PORT = re.compile(r"[^:]+:[0-9]+")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def host(value: str) -> str:
    """A host name or an IP address, normalised; never the idna codec, which raises on odd labels."""
    text(value, limit=MAX_HOST + 1)
    if "@" in value:
        raise Invalid(f"put the user in ssh.user, not in the host, got {shown(value)}")
    if value.startswith("[") or value.endswith("]"):
        raise Invalid(f"write an IPv6 address without brackets, got {shown(value)}")
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        pass
    if _HOST_PORT.fullmatch(value):
        raise Invalid(f"put the port in ssh.port, not in the host, got {shown(value)}")
    return _host_name(value)


def _host_name(value: str) -> str:
    expected = f"a host name (letters, digits, '-' and '.') or an IP address, got {shown(value)}"
    if not value.isascii():
        raise Invalid(f"expected a host name in ASCII (an international name in its xn-- form), got {shown(value)}")
    name = value.lower().removesuffix(".")
    if len(name) > MAX_HOST:
        raise Invalid(f"a host name has at most {MAX_HOST} characters, got {len(name)}")
    labels = name.split(".")
    for label in labels:
        if len(label) > MAX_LABEL:
            raise Invalid(f"each part of a host name has at most {MAX_LABEL} characters, got one of {len(label)}")
        if not _LABEL.fullmatch(label):
            raise Invalid(f"expected {expected}")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # 127.0.523 or 0x7f.1 reach a machine (inet_aton) but hide which one: only a.b.c.d is an address here.
        raise Invalid(
            f"neither an IP address (write four decimal numbers, a.b.c.d) nor a host name, got {shown(value)}"
        )
    return name


def displayed_url(value: str) -> str:
    """A URL as a message shows it: any user name and password replaced by ******."""
    return shown(_USERINFO.sub(r"\1******@", value))


def http_url(value: str, *, keep_path: bool = False) -> str:
    """An http(s) URL without credentials, normalised (and without a trailing slash unless `keep_path`)."""
    text(value)
    expected = f"expected an http:// or https:// URL, got {displayed_url(value)}"
    if any(char.isspace() for char in value):
        raise Invalid(expected)
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
        hostname = parts.hostname
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        raise Invalid(expected) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not hostname:
        raise Invalid(expected)
    if "@" in parts.netloc:
        raise Invalid(
            f"must not hold a user name or password (give them under credentials), got {displayed_url(value)}"
        )
    if port == 0:
        raise Invalid(f"expected a port between 1 and 65535, got {displayed_url(value)}")
    try:
        normal_host = host(hostname)
    except Invalid as error:
        raise Invalid(f"{expected}: {error.message}") from None
    netloc = f"[{normal_host}]" if ":" in normal_host else normal_host
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        netloc += f":{port}"
    path = parts.path if keep_path else parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{path}{query}"


def remote_path(value: str) -> str:
    """An absolute POSIX path on a node, normalised."""
    text(value)
    if not value.startswith("/"):
        raise Invalid(f"must be an absolute path, got {shown(value)}")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise Invalid(f"must not contain '..', got {shown(value)}")
    return "/" + "/".join(parts)


def local_path(value: str, base_dir: Path) -> str:
    """A path on this machine: `~` expanded, a relative path taken from the inventory's directory, normalised."""
    text(value)
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else base_dir / path)


def relative_path(value: str) -> str:
    """A path inside the installation directory, normalised (`./conf//server.xml` -> `conf/server.xml`)."""
    text(value)
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or str(path) == ".":
        raise Invalid(f"must be a path inside the installation directory, without '..', got {shown(value)}")
    return str(path)


def command(value: str) -> str:
    """A command line confluo splits into words itself (no shell)."""
    text(value)
    try:
        words = shlex.split(value)
    except ValueError as error:
        raise Invalid(f"cannot split the command into words: {error}") from None
    if not words:
        raise Invalid("expected a command, got only spaces")
    return value


def command_template(value: str) -> str:
    """A command with {server}, {host} or {node} in it; `{{` and `}}` stand for literal braces."""
    command(value)
    allowed = ", ".join(f"{{{name}}}" for name in COMMAND_PLACEHOLDERS)
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(value)]
    except ValueError as error:
        raise Invalid(f"{error} (write {{{{ and }}}} for literal braces)") from None
    for name, spec, conversion in fields:
        if name is not None and (name not in COMMAND_PLACEHOLDERS or spec or conversion):
            raise Invalid(
                f"unknown placeholder {shown('{' + name + '}')}: use {allowed} (write {{{{ and }}}} for braces)"
            )
    return value
