"""Editing the inventory file in place for `confluo add-node`: the donor's entry copied as a new node, appended
to `nodes:`, every comment and the file's own indentation kept (ruamel.yaml's round trip); and the result
written atomically, its mode kept, only if the file still holds what was read.

Nothing here decides whether the result is valid: the caller validates the text with the normal loader.
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from confluo.errors import InventoryError

# Keys that name the donor itself in the cluster or the load balancer: never copied to a new node.
DONOR_ONLY_KEYS = ("id", "lb_server")


@dataclass(frozen=True)
class NewEntry:
    """What the new node's entry says differently from the donor's; None keeps the donor's value."""

    name: str
    host: str
    url: str
    ssh_port: int | None = None
    ssh_user: str | None = None
    run_as: str | None = None
    install_base: str | None = None  # install.base (symlink layout) or install.path (plain layout)
    home: str | None = None


def with_new_node(text: str, donor: str, entry: NewEntry, *, source: str) -> str:
    """The inventory text with `entry` appended to `nodes:`, made from the donor's mapping."""
    yaml, document = _round_trip(text, source)
    nodes = document.get("nodes") if isinstance(document, CommentedMap) else None
    if not isinstance(nodes, CommentedSeq):
        raise InventoryError(["nodes: not a list of nodes; confluo cannot add one"], source=source)
    donors = [item for item in nodes if isinstance(item, CommentedMap) and item.get("name") == donor]
    if len(donors) != 1:
        raise InventoryError([f"nodes: no single entry named {donor!r} to copy"], source=source)
    nodes.append(_new_mapping(donors[0], entry))
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def node_entry_names(text: str, *, source: str) -> list[str]:
    """The names the file's `nodes:` entries give, as written (before any validation)."""
    _, document = _round_trip(text, source)
    nodes = document.get("nodes") if isinstance(document, CommentedMap) else None
    if not isinstance(nodes, list):
        return []
    return [str(item.get("name")) for item in nodes if isinstance(item, dict) and item.get("name") is not None]


def _round_trip(text: str, source: str) -> tuple[YAML, Any]:
    try:
        yaml = YAML(typ="rt")
        yaml.preserve_quotes = True
        yaml.width = 4096  # never re-wrap a long line
        mapping, offset = guess_indents(text)
        yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
        return yaml, yaml.load(text)
    except YAMLError as error:
        raise InventoryError([f"cannot edit the file: {error}"], source=source) from None


def guess_indents(text: str) -> tuple[int, int]:
    """(a mapping's indent, a list item's dash offset) as the file writes them: the first nested key under a
    top-level key, and the first `- ` item (2 and 0 when the file shows neither)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    mapping = offset = None
    for previous, line in itertools.pairwise(lines):
        stripped = line.lstrip()
        depth = len(line) - len(stripped)
        if offset is None and stripped.startswith("- ") and not previous.startswith(" "):
            offset = depth
        elif mapping is None and depth and not stripped.startswith("-") and not previous.startswith((" ", "-")):
            mapping = depth
    return mapping or 2, offset or 0


def _plain(value: Any) -> Any:
    """A copy of the donor's values without the donor's comments (those stay with the donor)."""
    if isinstance(value, dict):
        copy = CommentedMap()
        for key, item in value.items():
            copy[key] = _plain(item)
        return copy
    if isinstance(value, list):
        return CommentedSeq(_plain(item) for item in value)
    return value


def _new_mapping(donor: CommentedMap, entry: NewEntry) -> CommentedMap:
    mapping: CommentedMap = _plain(donor)
    for key in DONOR_ONLY_KEYS:
        mapping.pop(key, None)
    if isinstance(mapping.get("ssh"), dict):
        mapping["ssh"].pop("alias", None)  # an ssh_config alias names the donor's host
    mapping["name"], mapping["host"], mapping["url"] = entry.name, entry.host, entry.url
    if entry.ssh_port is not None or entry.ssh_user is not None:
        ssh = mapping.setdefault("ssh", CommentedMap())
        if entry.ssh_port is not None:
            ssh["port"] = entry.ssh_port
        if entry.ssh_user is not None:
            ssh["user"] = entry.ssh_user
    if entry.run_as is not None:
        mapping["run_as"] = entry.run_as
    if entry.install_base is not None:
        install = mapping.setdefault("install", CommentedMap())
        install["path" if install.get("layout") == "plain" else "base"] = entry.install_base
    if entry.home is not None:
        mapping["home"] = entry.home
    return mapping


def write_if_unchanged(path: Path, expected: str, text: str) -> bool:
    """Writes `text` over `path` atomically (a temporary file beside it, renamed), keeping its mode, only while
    the file still holds `expected`; False (and nothing written) when someone changed it meanwhile. A symlink
    stays a symlink: its target is written."""
    path = path.resolve()
    try:
        if path.read_text(encoding="utf-8") != expected:
            return False
    except (OSError, UnicodeDecodeError):
        return False
    mode = path.stat().st_mode & 0o7777
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".confluo-new", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True
