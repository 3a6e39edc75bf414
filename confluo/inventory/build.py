"""From the file's data to the frozen model, in passes that report every problem where it is written.

1. The whole document against the schema (`schema.InventoryFile`): types, formats, unknown keys, and the
   rules within one section. `defaults` and each `nodes[i]` are all-optional patches here, so a wrong value is
   reported where it is written, once, even if every node inherits or overrides it.
2. Each node's own keys merged over `defaults`, then what must be set somewhere is checked: a node's home,
   its install base or path, its host. This runs on the raw data, so it reports even when pass 1 failed.
3. Once both passes are clean, the model is built and what must be unique is compared, after normalising.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from confluo.inventory import model
from confluo.inventory.load import Document
from confluo.inventory.problems import Loc, Problem, describe, suggestion
from confluo.inventory.schema import (
    INVENTORY_ERROR,
    MISSING_HINTS,
    SECRET_KEYS,
    ApacheSection,
    CommandSection,
    CredentialsSection,
    CustomizationsSection,
    HaproxySection,
    InventoryFile,
    NginxSection,
    NodeSection,
    SshSection,
    SynchronyNodeSection,
)
from confluo.secrets import SecretRef
from confluo.versions import Version

INHERITED = " (set it on the node or under defaults)"
_ABSENT = object()


def validate_document(
    document: Document, path: Path, target_version: str | None
) -> tuple[model.Inventory | None, list[Problem]]:
    """The inventory, or None and every problem found (a valid inventory has none)."""
    data = document.data
    if not isinstance(data, dict):
        what = "the file is empty" if data is None else f"got {describe(data)}"
        return None, [Problem(f"expected a mapping of settings at the top level; {what}")]
    problems = list(document.problems)
    context = {"base_dir": path.absolute().parent}
    parsed: InventoryFile | None = None
    try:
        parsed = InventoryFile.model_validate(data, context=context)
    except ValidationError as error:
        problems += [_problem(detail, document) for detail in error.errors()]
    requirements = _requirements(data, target_version)
    problems += requirements
    version = _version(parsed, target_version, problems)
    if parsed is None or requirements or version is None:
        return None, problems
    inventory = _inventory(parsed, path, version, context)
    problems += _duplicates(inventory.nodes)
    problems += _synchrony_duplicates(inventory.nodes, inventory.synchrony)
    return (None if problems else inventory), problems


# --- pass 1: the schema's errors, in the inventory's words ---------------------------------------------------


def _problem(detail: ErrorDetails, document: Document) -> Problem:
    loc, owner = _file_loc(detail["loc"])
    value = _value_at(document.data, loc)
    note = document.notes.get(loc)
    problem = _translated(detail, loc, owner, value)
    if note and problem.loc == loc:
        problem = Problem(f"{problem.message} ({note})", problem.loc, problem.at)
    return problem


def _translated(detail: ErrorDetails, loc: Loc, owner: type[BaseModel] | None, value: object) -> Problem:
    kind = detail["type"]
    context = detail.get("ctx") or {}
    if kind == INVENTORY_ERROR:
        field = context.get("field")
        if field:
            return Problem(str(context["message"]), (*loc, field), at="parent")
        return Problem(str(context["message"]), loc)
    if kind == "missing" or (value is None and kind.endswith("_type")):
        hint = MISSING_HINTS.get(tuple(part for part in loc if isinstance(part, str)))
        return Problem(f"missing; {hint}" if hint else "missing", loc, at="parent")
    if kind == "extra_forbidden":
        allowed = list(owner.model_fields) if owner else []
        return Problem(f"unknown key{suggestion(str(loc[-1]), allowed)}", loc, at="key")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        kinds = ", ".join(model.LOAD_BALANCER_KINDS)
        if kind == "union_tag_not_found":
            return Problem(f"missing; expected one of {kinds}", (*loc, "kind"), at="parent")
        return Problem(f"expected one of {kinds}, got {describe(_value_at(value, ('kind',)))}", (*loc, "kind"))
    expected = _EXPECTED.get(kind)
    if expected:
        return Problem(f"expected {expected}, got {describe(value)}", loc)
    return Problem(str(detail["msg"]), loc)  # pydantic's own words never include the value


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a positive number of seconds",  # every number with a fraction is a duration
    "bool_type": "true or false",
    "string_type": "a non-empty string",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
}


def _file_loc(loc: Sequence[str | int]) -> tuple[Loc, type[BaseModel] | None]:
    """The location in the file (pydantic adds the union tag, e.g. load_balancer.haproxy.socket) and the model
    whose field the last key is, for "did you mean"."""
    annotation: Any = InventoryFile
    owner: type[BaseModel] | None = None
    parts: list[str | int] = []
    for part in loc:
        annotation = _unwrap(annotation)
        members = _model_union(annotation)
        chosen = next((member for member in members if _tag(member) == part), None)
        if chosen is not None:
            annotation = chosen
            continue
        parts.append(part)
        if isinstance(part, int):
            arguments = typing.get_args(annotation)
            annotation = arguments[0] if arguments else None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            owner = annotation
            field = annotation.model_fields.get(part)
            annotation = field.annotation if field else None
        else:
            annotation = None
    return tuple(parts), owner


def _unwrap(annotation: Any) -> Any:
    """Without Annotated[...] and `| None`."""
    while True:
        origin = typing.get_origin(annotation)
        arguments = typing.get_args(annotation)
        if origin is typing.Annotated:
            annotation = arguments[0]
        elif _is_union(origin) and type(None) in arguments and len(arguments) == 2:
            annotation = next(argument for argument in arguments if argument is not type(None))
        else:
            return annotation


def _is_union(origin: object) -> bool:
    return origin is typing.Union or origin is types.UnionType


def _model_union(annotation: Any) -> list[type[BaseModel]]:
    if not _is_union(typing.get_origin(annotation)):
        return []
    members = typing.get_args(annotation)
    return [member for member in members if isinstance(member, type) and issubclass(member, BaseModel)]


def _tag(section: type[BaseModel]) -> object:
    field = section.model_fields.get("kind")
    arguments = typing.get_args(field.annotation) if field else ()
    return arguments[0] if arguments else None


def _value_at(data: object, loc: Loc) -> object:
    for part in loc:
        in_mapping = isinstance(data, Mapping) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_mapping or in_list):
            return _ABSENT
        data = data[part]  # type: ignore[index]
    return data


# --- pass 2: what must be set somewhere, once `defaults` is merged in -----------------------------------------


def merged(base: Mapping[str, object], over: Mapping[str, object]) -> dict[str, object]:
    """`over` deep-merged onto `base`; null drops an inherited value, `section:` with nothing keeps it."""
    result = dict(base)
    for key, value in over.items():
        inherited = result.get(key)
        if isinstance(inherited, Mapping) and isinstance(value, Mapping):
            result[key] = merged(inherited, value)
        elif not (isinstance(inherited, Mapping) and value is None):
            result[key] = value
    return result


def _requirements(data: Mapping[str, object], target_version: str | None) -> list[Problem]:
    problems = []
    target = data.get("target")
    if isinstance(target, Mapping) and target.get("version") is None and target_version is None:
        problems.append(Problem("missing; give it here or with --to", ("target", "version"), at="parent"))
    defaults = data.get("defaults")
    nodes = data.get("nodes")
    for index, entry in enumerate(nodes if isinstance(nodes, list) else []):
        if isinstance(entry, Mapping):
            settings = merged(defaults if isinstance(defaults, Mapping) else {}, entry)
            problems += _node_requirements(settings, entry, ("nodes", index))
    synchrony = data.get("synchrony")
    if isinstance(synchrony, Mapping) and isinstance(synchrony.get("nodes"), list):
        for index, entry in enumerate(synchrony["nodes"]):
            if isinstance(entry, Mapping):
                settings = merged(_synchrony_base(data), entry)
                problems += _synchrony_requirements(settings, entry, ("synchrony", "nodes", index))
    return problems


# What a Synchrony node takes from `defaults`: how to reach it, not Confluence's own settings (home, run_as).
SYNCHRONY_INHERITS = ("transport", "ssh", "sudo")


def _synchrony_base(data: Mapping[str, object]) -> dict[str, object]:
    """`defaults`' reach, then the `synchrony` section's shared settings: what each Synchrony node inherits."""
    defaults = data.get("defaults")
    reach = {k: v for k, v in defaults.items() if k in SYNCHRONY_INHERITS} if isinstance(defaults, Mapping) else {}
    shared = data.get("synchrony")
    own = {k: v for k, v in shared.items() if k != "nodes"} if isinstance(shared, Mapping) else {}
    return merged(reach, own)


def _synchrony_requirements(settings: Mapping[str, object], own: Mapping[str, object], where: Loc) -> list[Problem]:
    problems = []
    if _unset(settings, "home"):
        why = "missing; the Synchrony home, which holds synchrony-standalone.jar"
        problems.append(Problem(f"{why} (set it on the node or under synchrony)", (*where, "home"), at="parent"))
    local = settings.get("transport") == "local"
    if _unset(own, "host") and not local and _unset(settings, "ssh", "alias"):
        problems.append(Problem("missing; where SSH connects (or give ssh.alias)", (*where, "host"), at="parent"))
    return problems


def _node_requirements(settings: Mapping[str, object], own: Mapping[str, object], where: Loc) -> list[Problem]:
    problems = []

    def missing(key: str, why: str, suffix: str = INHERITED) -> None:
        problems.append(Problem(f"missing; {why}{suffix}", (*where, *key.split(".")), at="parent"))

    if _unset(settings, "home"):
        missing("home", "the node's local home directory")
    layout = _setting(settings, "install", "layout") or "symlink"
    if layout == "symlink" and _unset(settings, "install", "base"):
        missing("install.base", "layout symlink keeps its releases in install.base")
    if layout == "plain" and _unset(settings, "install", "path"):
        missing("install.path", "layout plain needs the installation in use today as install.path")
    if layout == "plain" and (_setting(settings, "service", "kind") or "script") == "script":
        # Nothing would make the service start the new installation: only a symlink or a service file can.
        message = (
            "install.layout plain needs service.kind initd or systemd (confluo repoints that service); "
            "or use install.layout symlink"
        )
        problems.append(Problem(message, (*where, "service", "kind")))
    local = settings.get("transport") == "local"
    if _unset(own, "host") and not local and _unset(settings, "ssh", "alias"):
        missing("host", "where SSH connects (or give ssh.alias)", suffix="")
    return problems


def _setting(settings: Mapping[str, object], *keys: str) -> object:
    value: object = settings
    for key in keys:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            return _ABSENT  # a section that is not a mapping: reported in pass 1
        value = value.get(key)
    return value


def _unset(settings: Mapping[str, object], *keys: str) -> bool:
    return _setting(settings, *keys) is None


def _version(parsed: InventoryFile | None, override: str | None, problems: list[Problem]) -> Version | None:
    if override is not None:
        try:
            return Version.parse(override)
        except ValueError as error:
            problems.append(Problem(f"--to: {error}"))
            return None
    if parsed is None or parsed.target.version is None:
        return None
    return Version.parse(parsed.target.version)


# --- pass 3: the model, and what must belong to one node ---------------------------------------------------


def _inventory(parsed: InventoryFile, path: Path, version: Version, context: dict[str, Path]) -> model.Inventory:
    defaults = parsed.defaults.model_dump(exclude_unset=True) if parsed.defaults else {}
    nodes = tuple(
        _node(NodeSection.model_validate(merged(defaults, node.model_dump(exclude_unset=True)), context=context))
        for node in parsed.nodes
    )
    customizations = parsed.customizations
    files = model.DEFAULT_CUSTOMIZATION_FILES
    if customizations is not None and customizations.files is not None:
        files = tuple(customizations.files)
    extra = tuple(customizations.extra_files or ()) if customizations else ()
    target = parsed.target
    cluster = parsed.cluster
    default_ssh = parsed.defaults.ssh if parsed.defaults else None
    return model.Inventory(
        path=path,
        cluster=model.ClusterSettings(
            cluster.name,
            cluster.api_url,
            cluster.verify_tls,
            cluster.timeout_seconds,
            _credentials(cluster.credentials),
        ),
        target=model.Target(version, target.archive, target.sha256, target.transfer, _remote(target.shared_home)),
        database=parsed.database,
        customizations=tuple(dict.fromkeys((*files, *extra))),  # in order, each once
        keep_releases=parsed.keep_releases,
        load_balancer=_load_balancer(parsed.load_balancer, default_ssh, context),
        nodes=nodes,
        on_failure=parsed.on_failure,
        carry=_carry(customizations),
        synchrony=_synchrony_nodes(parsed, context),
    )


def _synchrony_nodes(parsed: InventoryFile, context: dict[str, Path]) -> tuple[model.SynchronyNode, ...]:
    if parsed.synchrony is None:
        return ()
    base = _synchrony_base(parsed.model_dump(exclude_unset=True, include={"defaults", "synchrony"}))
    sections = (merged(base, node.model_dump(exclude_unset=True)) for node in parsed.synchrony.nodes)
    return tuple(_synchrony_node(SynchronyNodeSection.model_validate(s, context=context)) for s in sections)


def _synchrony_node(node: SynchronyNodeSection) -> model.SynchronyNode:
    ssh = _ssh(node.ssh)
    transport = node.transport or "ssh"
    timeouts = node.timeouts
    assert node.home is not None  # pass 2 found it set
    return model.SynchronyNode(
        transport=transport,
        ssh=ssh,
        sudo=node.sudo if node.sudo is not None else True,
        run_as=node.run_as,
        name=node.name,
        host=node.host or ("localhost" if transport == "local" else ssh.alias or ""),
        home=PurePosixPath(node.home),
        heartbeat_url=node.heartbeat_url,
        timeouts=model.SynchronyTimeouts(
            _or(timeouts.stop_seconds if timeouts else None, 60.0),
            _or(timeouts.start_seconds if timeouts else None, 300.0),
        ),
    )


def _carry(section: CustomizationsSection | None) -> model.Carry:
    if section is None:
        return model.Carry()
    return model.Carry(section.base_archive, section.base_sha256, section.accept_two_way, dict(section.resolve or {}))


def _remote(path: str | None) -> PurePosixPath | None:
    return None if path is None else PurePosixPath(path)


def _credentials(section: CredentialsSection) -> model.Credentials:
    key = next(key for key in SECRET_KEYS if getattr(section, key) is not None)
    kind, via = key.split("_")
    source = getattr(section, key)
    return model.Credentials(section.username, SecretRef(kind, via, source))  # type: ignore[arg-type]


def _ssh(section: SshSection | None) -> model.SshSettings:
    ssh = section or SshSection()
    known_hosts = Path(ssh.known_hosts) if ssh.known_hosts else Path(model.DEFAULT_KNOWN_HOSTS).expanduser()
    return model.SshSettings(
        user=ssh.user,
        port=ssh.port if ssh.port is not None else 22,
        key=Path(ssh.key) if ssh.key else None,
        known_hosts=known_hosts,
        alias=ssh.alias,
        connect_timeout_seconds=ssh.connect_timeout_seconds if ssh.connect_timeout_seconds is not None else 10.0,
    )


def _node(node: NodeSection) -> model.Node:
    ssh = _ssh(node.ssh)
    transport = node.transport or "ssh"
    install = node.install
    service = node.service
    timeouts = node.timeouts
    host = node.host or ("localhost" if transport == "local" else ssh.alias or "")
    assert node.home is not None  # pass 2 found it set
    return model.Node(
        transport=transport,
        ssh=ssh,
        sudo=node.sudo if node.sudo is not None else True,
        run_as=node.run_as,
        install=model.InstallSettings(
            (install.layout if install else None) or "symlink",
            _remote(install.base if install else None),
            _remote(install.path if install else None),
        ),
        home=PurePosixPath(node.home),
        service=model.ServiceSettings(
            (service.kind if service else None) or "script",
            (service.name if service else None) or "confluence",
            _remote(service.file if service else None),
        ),
        timeouts=model.Timeouts(
            _or(timeouts.stop_seconds if timeouts else None, 300.0),
            _or(timeouts.start_seconds if timeouts else None, 900.0),
            _or(timeouts.finalize_seconds if timeouts else None, 1800.0),
            _or(timeouts.min_ready_seconds if timeouts else None, 0.0),
            _or(timeouts.kill_grace_seconds if timeouts else None, 30.0),
            _or(timeouts.page_view_seconds if timeouts else None, 60.0),
            _or(timeouts.index_seconds if timeouts else None, 60.0),
        ),
        min_free_disk_mb=node.min_free_disk_mb if node.min_free_disk_mb is not None else 2048,
        name=node.name,
        host=host,
        url=node.url,
        cluster_id=node.id,
        lb_server=node.lb_server,
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _load_balancer(
    section: HaproxySection | NginxSection | ApacheSection | CommandSection | None,
    default_ssh: SshSection | None,
    context: dict[str, Path],
) -> model.LoadBalancer | None:
    if section is None:
        return None
    drain, on_timeout = section.drain_seconds, section.on_drain_timeout
    if isinstance(section, HaproxySection):
        ramp = section.weight_ramp
        return model.HaproxyBalancer(
            drain_seconds=drain,
            on_drain_timeout=on_timeout,
            socket=PurePosixPath(section.socket),
            backend=section.backend,
            remote=_remote_host(section.host, default_ssh, section.ssh, context),
            weight_ramp=model.WeightRamp(ramp.steps, ramp.seconds) if ramp else None,
            config=PurePosixPath(section.config) if section.config else None,
            reload_command=section.reload_command,
            test_command=section.test_command,
        )
    if isinstance(section, NginxSection):
        return model.NginxBalancer(
            drain_seconds=drain,
            on_drain_timeout=on_timeout,
            upstream_file=PurePosixPath(section.upstream_file),
            upstream=section.upstream,
            reload_command=section.reload_command,
            test_command=section.test_command,
            remote=_remote_host(section.host, default_ssh, section.ssh, context),
            pid_file=PurePosixPath(section.pid_file),
        )
    if isinstance(section, ApacheSection):
        credentials = _credentials(section.credentials) if section.credentials else None
        return model.ApacheBalancer(
            drain_seconds=drain,
            on_drain_timeout=on_timeout,
            balancer_manager_url=section.balancer_manager_url,
            balancer=section.balancer,
            verify_tls=section.verify_tls,
            credentials=credentials,
        )
    return model.CommandBalancer(
        drain_seconds=drain,
        on_drain_timeout=on_timeout,
        drain=section.drain,
        ready=section.ready,
        status=section.status,
        maint=section.maint,
    )


def _remote_host(
    host: str | None, default_ssh: SshSection | None, own_ssh: SshSection | None, context: dict[str, Path]
) -> model.RemoteHost | None:
    if host is None:
        return None
    base = default_ssh.model_dump(exclude_unset=True) if default_ssh else {}
    over = own_ssh.model_dump(exclude_unset=True) if own_ssh else {}
    return model.RemoteHost(host, _ssh(SshSection.model_validate(merged(base, over), context=context)))


def _duplicates(nodes: Sequence[model.Node]) -> list[Problem]:
    """Names, ids, URLs, balancer servers and SSH endpoints must each belong to one node (compared normalised)."""
    problems = []
    owners: dict[tuple[str, object], int] = {}

    def claim(index: int, field: Loc, space: str, key: object, shown: str) -> None:
        first = owners.setdefault((space, key), index)
        if first != index:
            problems.append(Problem(f"{shown} is already used by nodes[{first}]", ("nodes", index, *field)))

    for index, node in enumerate(nodes):
        claim(index, ("name",), "name", node.name, repr(node.name))
        claim(index, ("url",), "url", node.url, node.url)
        if node.cluster_id is not None:
            claim(index, ("id",), "id", node.cluster_id.lower(), f"the id {node.cluster_id!r}")
        if node.lb_server is None:
            owners.setdefault(("server", node.name), index)  # a name already clashes as a name
        if node.transport == "local":
            continue  # a local node is reached without SSH; its host is only a label
        if node.ssh.alias is not None:
            claim(index, ("ssh", "alias"), "alias", node.ssh.alias, f"ssh alias {node.ssh.alias!r}")
        else:
            claim(index, ("host",), "endpoint", (node.host, node.ssh.port), f"{node.host} port {node.ssh.port}")
    for index, node in enumerate(nodes):
        if node.lb_server is not None:
            shown = f"the load balancer server {node.lb_server!r}"
            claim(index, ("lb_server",), "server", node.lb_server, shown)
    return problems


def _synchrony_duplicates(nodes: Sequence[model.Node], synchrony: Sequence[model.SynchronyNode]) -> list[Problem]:
    """A Synchrony node's name is its own among every node's (events and the plan name it); its SSH endpoint and
    heartbeat URL belong to one Synchrony node."""
    problems = []
    names = {node.name: f"nodes[{index}]" for index, node in enumerate(nodes)}
    owners: dict[tuple[str, object], int] = {}

    def claim(index: int, field: Loc, key: tuple[str, object], shown: str) -> None:
        first = owners.setdefault(key, index)
        if first != index:
            problems.append(
                Problem(f"{shown} is already used by synchrony.nodes[{first}]", ("synchrony", "nodes", index, *field))
            )

    for index, node in enumerate(synchrony):
        if node.name in names:
            problems.append(
                Problem(f"{node.name!r} is already used by {names[node.name]}", ("synchrony", "nodes", index, "name"))
            )
        claim(index, ("name",), ("name", node.name), repr(node.name))
        claim(index, ("heartbeat_url",), ("url", node.heartbeat_url), node.heartbeat_url)
        if node.transport == "local":
            continue
        if node.ssh.alias is not None:
            claim(index, ("ssh", "alias"), ("alias", node.ssh.alias), f"ssh alias {node.ssh.alias!r}")
        else:
            claim(index, ("host",), ("endpoint", (node.host, node.ssh.port)), f"{node.host} port {node.ssh.port}")
    return problems
