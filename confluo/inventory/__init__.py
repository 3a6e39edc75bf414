"""The inventory: YAML in, validated frozen dataclasses out (see inventory.sample.yaml for every key).

Every problem is reported at once, each with its line, column and location (`nodes[2].ssh.port: ...`), in one
InventoryError, so a user fixes the file in one pass. Secrets are never read here, only their references.
The rest of confluo needs only the values in `model`; reading (`load`), the schema (`schema`) and the passes
that build the model (`build`) stay inside this package.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from confluo.errors import InventoryError
from confluo.inventory.build import validate_document
from confluo.inventory.load import InventoryReadError, parse_document, read_document
from confluo.inventory.model import (
    DEFAULT_CUSTOMIZATION_FILES,
    SYNCHRONY_JAR,
    Access,
    ApacheBalancer,
    Carry,
    ClusterSettings,
    CommandBalancer,
    Credentials,
    HaproxyBalancer,
    InstallSettings,
    Inventory,
    LoadBalancer,
    NginxBalancer,
    Node,
    NodeSettings,
    RemoteHost,
    ServiceSettings,
    SshSettings,
    SynchronyNode,
    SynchronyTimeouts,
    Target,
    Timeouts,
    WeightRamp,
)
from confluo.inventory.problems import render
from confluo.inventory.schema import json_schema as _json_schema


def load_inventory(path: Path, *, target_version: str | None = None) -> Inventory:
    """Read and validate the inventory; `target_version` (from --to) overrides target.version.

    Raises InventoryError listing every problem found, each prefixed by the file path. Reads only `path`.
    """
    inventory, problems = _validate(path, target_version)
    if inventory is None:
        raise InventoryError(problems, source=str(path), hint=f"fix them, then: confluo plan -i {path}")
    return inventory


def load_inventory_text(text: str, path: Path, *, source: str) -> Inventory:
    """`text` validated as if it were the file at `path` (relative paths resolve beside it): the inventory
    confluo would write, checked before it is. `source` names it in every problem."""
    try:
        document = parse_document(text)
    except InventoryReadError as error:
        raise InventoryError([render(p, {}, {}) for p in error.problems], source=source) from None
    inventory, problems = validate_document(document, path, None)
    if inventory is None:
        rendered = (render(problem, document.values, document.keys) for problem in problems)
        raise InventoryError(dict.fromkeys(rendered), source=source)
    return inventory


def check_inventory(path: Path, *, target_version: str | None = None) -> tuple[str, ...]:
    """Every problem `confluo inventory check` reports (none: the inventory is valid). Contacts nothing.

    Beyond the file itself, the local files it names are looked at (never read): a key, a known_hosts file, a
    secret file or a local archive that is missing or not a regular file is reported.
    """
    inventory, problems = _validate(path, target_version)
    if inventory is None:
        return tuple(f"{path}: {problem}" for problem in problems)
    return tuple(f"{path}: {problem}" for problem in _local_file_problems(inventory))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the inventory file (editors: `# yaml-language-server: $schema=...`)."""
    return _json_schema()


def _validate(path: Path, target_version: str | None) -> tuple[Inventory | None, tuple[str, ...]]:
    try:
        document = read_document(path)
    except InventoryReadError as error:
        return None, tuple(render(problem, {}, {}) for problem in error.problems)
    inventory, problems = validate_document(document, path, target_version)
    rendered = (render(problem, document.values, document.keys) for problem in problems)
    return inventory, tuple(dict.fromkeys(rendered))  # in order, each once


def _local_file_problems(inventory: Inventory) -> list[str]:
    files: dict[str, tuple[Path, bool]] = {}  # where -> (path, must exist)
    secret = inventory.cluster.credentials.secret
    if secret.via == "file":
        files[f"cluster.credentials.{secret.key}"] = (Path(secret.source), True)
    if "://" not in inventory.target.archive:
        files["target.archive"] = (Path(inventory.target.archive), True)
    reached: list[tuple[str, Access]] = [(f"nodes[{i}]", node) for i, node in enumerate(inventory.nodes)]
    reached += [(f"synchrony.nodes[{i}]", node) for i, node in enumerate(inventory.synchrony)]
    for where, machine in reached:
        if machine.transport == "ssh":
            if machine.ssh.key is not None:
                files[f"{where}.ssh.key"] = (machine.ssh.key, True)
            files[f"{where}.ssh.known_hosts"] = (machine.ssh.known_hosts, False)
    problems = []
    for where, (path, required) in files.items():
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            if required:
                problems.append(f"{where}: {str(path)!r} does not exist")
            continue
        except OSError as error:
            problems.append(f"{where}: cannot look at {str(path)!r}: {error.strerror}")
            continue
        if not stat.S_ISREG(mode):
            problems.append(f"{where}: {str(path)!r} is not a regular file")
    return list(dict.fromkeys(problems))


__all__ = [
    "DEFAULT_CUSTOMIZATION_FILES",
    "SYNCHRONY_JAR",
    "Access",
    "ApacheBalancer",
    "Carry",
    "ClusterSettings",
    "CommandBalancer",
    "Credentials",
    "HaproxyBalancer",
    "InstallSettings",
    "Inventory",
    "LoadBalancer",
    "NginxBalancer",
    "Node",
    "NodeSettings",
    "RemoteHost",
    "ServiceSettings",
    "SshSettings",
    "SynchronyNode",
    "SynchronyTimeouts",
    "Target",
    "Timeouts",
    "WeightRamp",
    "check_inventory",
    "json_schema",
    "load_inventory",
    "load_inventory_text",
]
