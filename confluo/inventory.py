"""The inventory: YAML in, validated frozen dataclasses out (see inventory.sample.yaml for every key).

Validation collects every problem, each with its location (`nodes[2].ssh.port: ...`), and raises them
together in one InventoryError, so a user fixes the file in one pass. Secrets are never read here, only their
references. A node's settings are `defaults` deep-merged with the node's own keys; a problem is reported where
the offending value was written.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import shlex
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, TypeVar

import yaml

from confluo.errors import InventoryError
from confluo.secrets import SecretKind, SecretRef, SecretSource
from confluo.versions import Version

TransportKind = Literal["ssh", "local"]
Layout = Literal["symlink", "plain"]
ServiceKind = Literal["script", "initd", "systemd"]
TransferMode = Literal["per-node", "shared-home"]
Database = Literal["mysql", "postgresql", "oracle", "sqlserver"]
LoadBalancerKind = Literal["haproxy", "nginx", "command"]

TRANSPORTS: tuple[TransportKind, ...] = ("ssh", "local")
LAYOUTS: tuple[Layout, ...] = ("symlink", "plain")
SERVICE_KINDS: tuple[ServiceKind, ...] = ("script", "initd", "systemd")
TRANSFER_MODES: tuple[TransferMode, ...] = ("per-node", "shared-home")
DATABASES: tuple[Database, ...] = ("mysql", "postgresql", "oracle", "sqlserver")
LOAD_BALANCER_KINDS: tuple[LoadBalancerKind, ...] = ("haproxy", "nginx", "command")

DEFAULT_CUSTOMIZATION_FILES: tuple[str, ...] = (
    "conf/server.xml",
    "bin/setenv.sh",
    "bin/user.sh",
    "confluence/WEB-INF/classes/seraph-config.xml",
    "confluence/WEB-INF/classes/crowd.properties",
)
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
MIN_KEEP_RELEASES = 2  # the release in use and the previous one, for a rollback


@dataclass(frozen=True)
class Credentials:
    username: str | None
    secret: SecretRef


@dataclass(frozen=True)
class ClusterSettings:
    name: str
    api_url: str
    verify_tls: bool
    timeout_seconds: float
    credentials: Credentials


@dataclass(frozen=True)
class Target:
    version: Version
    archive: str  # an http(s) URL, or an absolute local path
    sha256: str | None  # lower-case hex; required for a URL
    transfer: TransferMode
    shared_home: PurePosixPath | None

    @property
    def staging_shared_home(self) -> str | None:
        """The shared home the archive is sent to once, or None when it goes to every node."""
        return str(self.shared_home) if self.transfer == "shared-home" and self.shared_home else None


@dataclass(frozen=True)
class SshSettings:
    user: str | None
    port: int
    key: Path | None
    known_hosts: Path
    alias: str | None
    connect_timeout_seconds: float


@dataclass(frozen=True)
class InstallSettings:
    layout: Layout
    base: PurePosixPath | None
    path: PurePosixPath | None


@dataclass(frozen=True)
class ServiceSettings:
    kind: ServiceKind
    name: str
    file: PurePosixPath | None = None  # the init.d script or systemd unit that names the installation

    @property
    def definition(self) -> PurePosixPath | None:
        """The file confluo rewrites to repoint an initd or systemd service (None for script)."""
        if self.file is not None or self.kind == "script":
            return self.file
        if self.kind == "initd":
            return PurePosixPath("/etc/init.d") / self.name
        return PurePosixPath("/etc/systemd/system") / f"{self.name}.service"


@dataclass(frozen=True)
class Timeouts:
    stop_seconds: float
    start_seconds: float
    finalize_seconds: float
    min_ready_seconds: float = 0.0  # how long an upgraded node must keep serving before the next one is stopped


@dataclass(frozen=True)
class NodeSettings:
    """The settings a node inherits from `defaults` and may override."""

    transport: TransportKind
    ssh: SshSettings
    sudo: bool
    run_as: str | None
    install: InstallSettings
    home: PurePosixPath
    service: ServiceSettings
    timeouts: Timeouts
    min_free_disk_mb: int


@dataclass(frozen=True)
class Node(NodeSettings):
    name: str  # the node's name in the cluster
    host: str
    url: str
    cluster_id: str | None = None  # the node's id in the ZDU API, where its name does not tell it apart


@dataclass(frozen=True)
class LoadBalancerSettings:
    kind: LoadBalancerKind
    host: str | None
    socket: str | None
    backend: str | None


@dataclass(frozen=True)
class Inventory:
    path: Path
    cluster: ClusterSettings
    target: Target
    database: Database
    customizations: tuple[str, ...]
    keep_releases: int
    load_balancer: LoadBalancerSettings | None
    nodes: tuple[Node, ...]


def load_inventory(path: Path, *, target_version: str | None = None) -> Inventory:
    """Read and validate the inventory; `target_version` (from --to) overrides target.version.

    Raises InventoryError listing every problem found, each prefixed by the file path.
    """
    document = _read_yaml(path)
    if not isinstance(document, Mapping):
        what = "the file is empty" if document is None else f"got {_describe(document)}"
        raise InventoryError([f"expected a mapping of settings at the top level; {what}"], source=str(path))
    problems = _Problems()
    inventory = _build_inventory(path, document, target_version, problems)
    if problems.items:
        raise InventoryError(problems.items, source=str(path), hint=f"fix them, then: confluo plan -i {path}")
    return inventory


# --- reading the YAML ---------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice in one mapping (PyYAML keeps the last silently)."""


def _construct_mapping_once(loader: _StrictLoader, node: yaml.MappingNode) -> dict[object, object]:
    # Checked before `<<` merge keys are applied: a key written here may override a merged one.
    seen: set[object] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is written twice in this mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_once)


def _read_yaml(path: Path) -> object:
    def refuse(problem: str) -> InventoryError:
        return InventoryError([problem], source=str(path))

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise refuse("not a UTF-8 text file") from None
    except OSError as error:
        raise refuse(f"cannot read the inventory: {error.strerror}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        raise refuse(_describe_yaml_error(error)) from None
    except yaml.YAMLError as error:
        raise refuse(f"not valid YAML: {error}") from None


def _describe_yaml_error(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    problem = error.problem or error.context or "invalid YAML"
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {problem}"


# --- collecting problems and reading typed values ---------------------------------------------------------

_S = TypeVar("_S", bound=str)


class _Problems:
    def __init__(self) -> None:
        # A dict keeps the order found and drops repeats (a bad default is seen once per node).
        self._found: dict[str, None] = {}

    def add(self, where: str, message: str) -> None:
        self._found.setdefault(f"{where}: {message}", None)

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(self._found)


@dataclass(frozen=True)
class _Layer:
    data: Mapping[object, object]
    where: str  # where this mapping sits in the file, e.g. "nodes[2].ssh"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_HOST = re.compile(r"\S+")


class _Reader:
    """Typed access to one mapping of the inventory, or to a node's own keys layered over `defaults`.

    A value comes from the first layer that has its key, and a problem is reported at that layer's location.
    A getter that finds a wrong value records the problem and returns a harmless placeholder:
    load_inventory raises before a placeholder can escape. A `partial` reader (defaults checked on their own,
    or a section that is missing altogether) checks the values present but never reports a missing one.
    """

    def __init__(
        self,
        layers: Sequence[_Layer],
        problems: _Problems,
        *,
        where: str,
        partial: bool = False,
        missing_suffix: str = "",
    ) -> None:
        self.layers = tuple(layers)
        self.problems = problems
        self.where = where
        self.partial = partial
        self._missing_suffix = missing_suffix

    @classmethod
    def root(cls, document: Mapping[object, object], problems: _Problems) -> _Reader:
        return cls([_Layer(document, "")], problems, where="")

    def location(self, key: str) -> str:
        return _join(self.where, key)

    def has(self, key: str) -> bool:
        return any(key in layer.data for layer in self.layers)

    def find(self, key: str) -> tuple[object, str] | None:
        """The value of `key` and where it was written, from the most specific layer that has it."""
        for layer in self.layers:
            if key in layer.data:
                return layer.data[key], _join(layer.where, key)
        return None

    def report(self, where: str, message: str) -> None:
        self.problems.add(where, message)

    def report_missing(self, key: str, why: str = "") -> None:
        if not self.partial:
            detail = f"; {why}" if why else ""
            self.report(self.location(key), f"missing{detail}{self._missing_suffix}")

    def reject_unknown(self, allowed: Sequence[str]) -> None:
        """Report keys this reader's own mapping does not know (inherited layers are checked on their own)."""
        for layer in self.layers:
            if layer.where != self.where:
                continue
            for key in layer.data:
                if key not in allowed:
                    self.report(_join(layer.where, str(key)), f"unknown key{_suggestion(str(key), allowed)}")

    def section(self, key: str, *, required: bool = False) -> _Reader:
        children: list[_Layer] = []
        for layer in self.layers:
            value = layer.data.get(key)
            if isinstance(value, Mapping):
                children.append(_Layer(value, _join(layer.where, key)))
            elif key in layer.data and value is not None:  # `key:` with nothing under it is an empty section
                self.report(_join(layer.where, key), f"expected a mapping, got {_describe(value)}")
        missing = not children and not self.has(key)
        if required and missing:
            self.report_missing(key)
        return _Reader(
            children,
            self.problems,
            where=self.location(key),
            partial=self.partial or (required and missing),
            missing_suffix=self._missing_suffix,
        )

    def text(self, key: str, *, pattern: re.Pattern[str] | None = None, expected: str = "") -> str | None:
        """An optional non-empty string; null means none (so a node can drop an inherited value)."""
        found = self.find(key)
        if found is None or found[0] is None:
            return None
        value, where = found
        if not isinstance(value, str) or not value.strip():
            self.report(where, f"expected a non-empty string, got {_describe(value)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.report(where, f"expected {expected}, got {value!r}")
            return None
        return value

    def is_unset(self, key: str) -> bool:
        """True when no layer gives `key` a value (absent, or null in the most specific layer that has it)."""
        found = self.find(key)
        return found is None or found[0] is None

    def required_text(self, key: str, *, pattern: re.Pattern[str] | None = None, expected: str = "") -> str:
        if self.is_unset(key):
            self.report_missing(key)
            return ""
        return self.text(key, pattern=pattern, expected=expected) or ""

    def _where_found(self, key: str) -> str:
        found = self.find(key)
        return found[1] if found else self.location(key)

    def boolean(self, key: str, default: bool) -> bool:
        found = self.find(key)
        if found is None:
            return default
        value, where = found
        if not isinstance(value, bool):
            self.report(where, f"expected true or false, got {_describe(value)}")
            return default
        return value

    def integer(self, key: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        found = self.find(key)
        if found is None:
            return default
        value, where = found
        # bool is a subclass of int in Python, but `port: true` is certainly a mistake.
        if not isinstance(value, int) or isinstance(value, bool):
            self.report(where, f"expected an integer, got {_describe(value)}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            limit = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            self.report(where, f"expected an integer {limit}, got {value}")
            return default
        return value

    def seconds(self, key: str, default: float) -> float:
        found = self.find(key)
        if found is None:
            return default
        value, where = found
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            self.report(where, f"expected a positive number of seconds, got {_describe(value)}")
            return default
        return float(value)

    def choice(self, key: str, options: tuple[_S, ...], default: _S | None) -> _S | None:
        """One of `options`, or `default` when absent; None after reporting a wrong or missing value.

        None (rather than a placeholder) lets callers skip the checks that depend on the choice, which would
        only add noise to the one problem that matters.
        """
        found = self.find(key)
        if found is None:
            if default is None:
                self.report_missing(key, f"expected one of {', '.join(options)}")
            return default
        value, where = found
        for option in options:
            if value == option:
                return option
        self.report(where, f"expected one of {', '.join(options)}, got {_describe(value)}")
        return None

    def required_remote_path(self, key: str, why: str) -> PurePosixPath | None:
        if self.is_unset(key):
            self.report_missing(key, why)
            return None
        return self.remote_path(key)

    def remote_path(self, key: str) -> PurePosixPath | None:
        """An absolute POSIX path on a node."""
        value = self.text(key)
        if value is None:
            return None
        path = PurePosixPath(value)
        if not path.is_absolute():
            self.report(self._where_found(key), f"must be an absolute path, got {value!r}")
            return None
        if ".." in path.parts:
            self.report(self._where_found(key), f"must not contain '..', got {value!r}")
            return None
        return path

    def local_path(self, key: str, base_dir: Path) -> Path | None:
        """A path on this machine: `~` expanded, a relative path taken from the inventory's directory."""
        value = self.text(key)
        return None if value is None else _local_path(value, base_dir)

    def url(self, key: str) -> str:
        """A required http(s) URL, returned without a trailing slash."""
        value = self.required_text(key)
        if value and not _is_http_url(value):
            self.report(self._where_found(key), f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    def version(self, key: str) -> Version | None:
        found = self.find(key)
        if found is None or found[0] is None:
            return None
        value, where = found
        if isinstance(value, float | int) and not isinstance(value, bool):
            # YAML reads `9.2` as the number 9.2 and `9.10` as 9.1, so the text must be quoted.
            self.report(where, f"write the version in quotes (YAML read {value!r} as a number)")
            return None
        if not isinstance(value, str):
            self.report(where, f"expected a version such as 9.2.14, got {_describe(value)}")
            return None
        try:
            return Version.parse(value)
        except ValueError as error:
            self.report(where, str(error))
            return None


def _suggestion(key: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_http_url(value: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(value)
        has_host = bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and has_host and not any(c.isspace() for c in value)


def _local_path(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


# --- the sections -------------------------------------------------------------------------------------------

_TOP_KEYS = (
    "cluster",
    "target",
    "database",
    "defaults",
    "customizations",
    "keep_releases",
    "load_balancer",
    "nodes",
)
_CLUSTER_KEYS = ("name", "api_url", "verify_tls", "timeout_seconds", "credentials")
_SECRET_KEYS: dict[str, tuple[SecretKind, SecretSource]] = {
    "password_env": ("password", "env"),
    "password_file": ("password", "file"),
    "password_command": ("password", "command"),
    "token_env": ("token", "env"),
    "token_file": ("token", "file"),
    "token_command": ("token", "command"),
}
_CREDENTIAL_KEYS = ("username", *_SECRET_KEYS)
_TARGET_KEYS = ("version", "archive", "sha256", "transfer", "shared_home")
_CUSTOMIZATION_KEYS = ("files", "extra_files")
_LOAD_BALANCER_KEYS = ("kind", "host", "socket", "backend")
_SETTING_KEYS = (
    "transport",
    "ssh",
    "sudo",
    "run_as",
    "install",
    "home",
    "service",
    "timeouts",
    "min_free_disk_mb",
)
_NODE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_NODE_KEYS = ("name", "id", "host", "url", *_SETTING_KEYS)
_SSH_KEYS = ("user", "port", "key", "known_hosts", "alias", "connect_timeout_seconds")
_INSTALL_KEYS = ("layout", "base", "path")
_SERVICE_KEYS = ("kind", "name", "file")
_TIMEOUT_KEYS = ("stop_seconds", "start_seconds", "finalize_seconds", "min_ready_seconds")


def _build_inventory(
    path: Path, document: Mapping[object, object], target_version: str | None, problems: _Problems
) -> Inventory:
    root = _Reader.root(document, problems)
    root.reject_unknown(_TOP_KEYS)
    base_dir = path.absolute().parent
    return Inventory(
        path=path,
        cluster=_cluster(root.section("cluster", required=True), base_dir),
        target=_target(root.section("target", required=True), base_dir, target_version),
        database=root.choice("database", DATABASES, default=None) or "mysql",
        customizations=_customizations(root.section("customizations")),
        keep_releases=root.integer("keep_releases", 3, minimum=MIN_KEEP_RELEASES),
        load_balancer=_load_balancer(root),
        nodes=_nodes(root, base_dir),
    )


def _cluster(section: _Reader, base_dir: Path) -> ClusterSettings:
    section.reject_unknown(_CLUSTER_KEYS)
    return ClusterSettings(
        name=section.required_text("name"),
        api_url=section.url("api_url"),
        verify_tls=section.boolean("verify_tls", True),
        timeout_seconds=section.seconds("timeout_seconds", 10.0),
        credentials=_credentials(section.section("credentials", required=True), base_dir),
    )


def _credentials(section: _Reader, base_dir: Path) -> Credentials:
    section.reject_unknown(_CREDENTIAL_KEYS)
    username = section.text("username")
    given = [key for key in _SECRET_KEYS if section.has(key)]
    if len(given) != 1 and not section.partial:
        found = f" (found {', '.join(given)})" if given else ""
        section.report(section.where, f"give exactly one of {', '.join(_SECRET_KEYS)}{found}")
    if not given:
        return Credentials(username, SecretRef("password", "env", ""))
    kind, via = _SECRET_KEYS[given[0]]
    if kind == "password" and username is None:
        section.report_missing("username", "password authentication needs a user name")
    return Credentials(username, SecretRef(kind, via, _secret_source(section, given[0], via, base_dir)))


def _secret_source(section: _Reader, key: str, via: SecretSource, base_dir: Path) -> str:
    if via == "env":
        return section.required_text(key, pattern=_ENV_NAME, expected="an environment variable name")
    value = section.required_text(key)
    if via == "file":
        return str(_local_path(value, base_dir)) if value else ""
    try:
        if value and not shlex.split(value):
            section.report(section.location(key), "expected a command, got only spaces")
    except ValueError as error:
        section.report(section.location(key), f"cannot split the command into words: {error}")
    return value


def _target(section: _Reader, base_dir: Path, override: str | None) -> Target:
    section.reject_unknown(_TARGET_KEYS)
    version = _target_version(section, override)
    archive, is_url = _archive(section, base_dir)
    sha256 = _sha256(section)
    if is_url and sha256 is None:
        section.report_missing("sha256", "an archive given by URL needs its SHA-256 checksum")
    transfer = section.choice("transfer", TRANSFER_MODES, default="per-node")
    shared_home = section.remote_path("shared_home")
    if transfer == "shared-home" and section.is_unset("shared_home"):
        section.report_missing("shared_home", "target.transfer shared-home needs the shared home's path")
    return Target(version, archive, sha256, transfer or "per-node", shared_home)


def _target_version(section: _Reader, override: str | None) -> Version:
    from_file = section.version("version")  # checked even when --to replaces it: the file must be valid
    if override is not None:
        try:
            return Version.parse(override)
        except ValueError as error:
            section.report("--to", str(error))
            return Version(0, 0, 0)
    if section.is_unset("version"):
        section.report_missing("version", "give it here or with --to")
    return from_file or Version(0, 0, 0)


def _archive(section: _Reader, base_dir: Path) -> tuple[str, bool]:
    """The archive as a URL or an absolute local path, and whether it is a URL."""
    value = section.required_text("archive")
    if "://" not in value:
        return (str(_local_path(value, base_dir)) if value else ""), False
    if not _is_http_url(value):
        section.report(section.location("archive"), f"expected an http(s) URL or a local path, got {value!r}")
        return value, False
    return value, True


def _sha256(section: _Reader) -> str | None:
    found = section.find("sha256")
    if found is None or found[0] is None:
        return None
    value, where = found
    if isinstance(value, int | float) and not isinstance(value, bool):
        # An all-digit checksum reads as a number in YAML (and loses its leading zeros).
        section.report(where, "write the checksum in quotes (YAML read it as a number)")
        return None
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        section.report(where, f"expected 64 hexadecimal characters, got {_describe(value)}")
        return None
    return value.lower()


def _customizations(section: _Reader) -> tuple[str, ...]:
    section.reject_unknown(_CUSTOMIZATION_KEYS)
    files = _relative_paths(section, "files") if section.has("files") else DEFAULT_CUSTOMIZATION_FILES
    extra = _relative_paths(section, "extra_files")
    return tuple(dict.fromkeys((*files, *extra)))  # in order, each once


def _relative_paths(section: _Reader, key: str) -> tuple[str, ...]:
    found = section.find(key)
    if found is None or found[0] is None:
        return ()
    value, where = found
    if not isinstance(value, list):
        section.report(where, f"expected a list of paths, got {_describe(value)}")
        return ()
    paths = []
    for index, item in enumerate(value):
        path = _relative_path(item)
        if isinstance(path, str):
            paths.append(path)
        else:
            section.report(f"{where}[{index}]", path.problem)
    return tuple(paths)


@dataclass(frozen=True)
class _Rejected:
    problem: str


def _relative_path(item: object) -> str | _Rejected:
    """A path inside the installation directory, normalised (`./conf//server.xml` -> `conf/server.xml`)."""
    if not isinstance(item, str) or not item.strip():
        return _Rejected(f"expected a path, got {_describe(item)}")
    path = PurePosixPath(item)
    if path.is_absolute() or ".." in path.parts or str(path) == ".":
        return _Rejected(f"must be a path inside the installation directory, without '..', got {item!r}")
    return str(path)


def _load_balancer(root: _Reader) -> LoadBalancerSettings | None:
    if root.is_unset("load_balancer"):
        return None
    section = root.section("load_balancer")
    section.reject_unknown(_LOAD_BALANCER_KEYS)
    return LoadBalancerSettings(
        kind=section.choice("kind", LOAD_BALANCER_KINDS, default=None) or "haproxy",
        host=section.text("host"),
        socket=section.text("socket"),
        backend=section.text("backend"),
    )


# --- nodes: their own keys over `defaults` ----------------------------------------------------------------


def _nodes(root: _Reader, base_dir: Path) -> tuple[Node, ...]:
    defaults = root.section("defaults")
    defaults.reject_unknown(_SETTING_KEYS)
    # Checked once on their own, so a wrong default is reported even where every node overrides it.
    _node_settings(_Reader(defaults.layers, root.problems, where="defaults", partial=True), base_dir)
    nodes = [(index, _node(entry, index, defaults, base_dir)) for index, entry in _node_entries(root)]
    _check_unique(nodes, root.problems)
    return tuple(node for _, node in nodes)


def _node_entries(root: _Reader) -> list[tuple[int, Mapping[object, object]]]:
    """Each node's mapping with its index in the list; an entry that is not a mapping is reported."""
    found = root.find("nodes")
    if found is None or found[0] is None:
        root.report_missing("nodes", "list at least one node")
        return []
    value, where = found
    if not isinstance(value, list):
        root.report(where, f"expected a list of nodes, got {_describe(value)}")
        return []
    if not value:
        root.report(where, "list at least one node")
    entries: list[tuple[int, Mapping[object, object]]] = []
    for index, entry in enumerate(value):
        if isinstance(entry, Mapping):
            entries.append((index, entry))
        else:
            root.report(f"nodes[{index}]", f"expected a mapping, got {_describe(entry)}")
    return entries


def _node(entry: Mapping[object, object], index: int, defaults: _Reader, base_dir: Path) -> Node:
    where = f"nodes[{index}]"
    own = _Reader([_Layer(entry, where)], defaults.problems, where=where)
    own.reject_unknown(_NODE_KEYS)
    inherited = _Reader(
        [_Layer(entry, where), *defaults.layers],
        defaults.problems,
        where=where,
        missing_suffix=" (set it on the node or under defaults)",
    )
    settings = _node_settings(inherited, base_dir)
    inherited_values = {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)}
    return Node(
        name=own.required_text("name"),
        host=_host(own, settings),
        url=own.url("url"),
        cluster_id=own.text("id", pattern=_NODE_ID, expected="a node id (letters, digits, - _ .)"),
        **inherited_values,
    )


def _host(node: _Reader, settings: NodeSettings) -> str:
    """Where SSH connects; an ssh alias can stand for it, and a local node needs none."""
    host = node.text("host", pattern=_HOST, expected="a host name or address")
    if host is not None:
        return host
    if settings.transport == "local":
        return "localhost"
    if settings.ssh.alias is not None:
        return settings.ssh.alias
    if node.is_unset("host"):
        node.report_missing("host", "where SSH connects (or give ssh.alias)")
    return ""


def _node_settings(node: _Reader, base_dir: Path) -> NodeSettings:
    home = node.required_remote_path("home", "the node's local home directory")
    settings = NodeSettings(
        transport=node.choice("transport", TRANSPORTS, default="ssh") or "ssh",
        ssh=_ssh(node.section("ssh"), base_dir),
        sudo=node.boolean("sudo", True),
        run_as=node.text("run_as", pattern=_USER_NAME, expected="a user name"),
        install=_install(node.section("install")),
        home=home or PurePosixPath("/"),
        service=_service(node.section("service")),
        timeouts=_timeouts(node.section("timeouts")),
        min_free_disk_mb=node.integer("min_free_disk_mb", 2048, minimum=0),
    )
    if settings.install.layout == "plain" and settings.service.kind == "script":
        # Nothing would make the service start the new installation: only a symlink or a service file can.
        node.report(
            node.location("service.kind"),
            "install.layout plain needs service.kind initd or systemd (confluo repoints that service); "
            "or use install.layout symlink",
        )
    return settings


def _ssh(section: _Reader, base_dir: Path) -> SshSettings:
    section.reject_unknown(_SSH_KEYS)
    return SshSettings(
        user=section.text("user"),
        port=section.integer("port", 22, minimum=1, maximum=65535),
        key=section.local_path("key", base_dir),
        known_hosts=section.local_path("known_hosts", base_dir) or _local_path(DEFAULT_KNOWN_HOSTS, base_dir),
        alias=section.text("alias"),
        connect_timeout_seconds=section.seconds("connect_timeout_seconds", 10.0),
    )


def _install(section: _Reader) -> InstallSettings:
    section.reject_unknown(_INSTALL_KEYS)
    layout = section.choice("layout", LAYOUTS, default="symlink")
    base = section.remote_path("base")
    path = section.remote_path("path")
    if layout == "symlink" and section.is_unset("base"):
        section.report_missing("base", "layout symlink keeps its releases in install.base")
    if layout == "plain" and section.is_unset("path"):
        section.report_missing("path", "layout plain needs the installation in use today as install.path")
    return InstallSettings(layout or "symlink", base, path)


def _service(section: _Reader) -> ServiceSettings:
    section.reject_unknown(_SERVICE_KEYS)
    name = section.text("name", pattern=_SERVICE_NAME, expected="a service name (letters, digits, . _ @ -)")
    kind = section.choice("kind", SERVICE_KINDS, default="script") or "script"
    return ServiceSettings(kind, name or "confluence", section.remote_path("file"))


def _timeouts(section: _Reader) -> Timeouts:
    section.reject_unknown(_TIMEOUT_KEYS)
    return Timeouts(
        stop_seconds=section.seconds("stop_seconds", 300.0),
        start_seconds=section.seconds("start_seconds", 900.0),
        finalize_seconds=section.seconds("finalize_seconds", 1800.0),
        min_ready_seconds=section.seconds("min_ready_seconds", 0.0),
    )


def _check_unique(nodes: Sequence[tuple[int, Node]], problems: _Problems) -> None:
    """Names, URLs and SSH endpoints must each belong to one node."""
    owners: dict[tuple[str, str], int] = {}

    def claim(index: int, field: str, shown: str) -> None:
        if not shown:
            return  # a missing value was already reported
        first = owners.setdefault((field, shown), index)
        if first != index:
            problems.add(f"nodes[{index}].{field}", f"{shown} is already used by nodes[{first}]")

    for index, node in nodes:
        claim(index, "name", repr(node.name) if node.name else "")
        claim(index, "url", node.url)
        if node.transport == "local":
            continue  # a local node is reached without SSH; its host is only a label
        if node.ssh.alias is not None:
            claim(index, "ssh.alias", f"ssh alias {node.ssh.alias!r}")
        elif node.host:
            claim(index, "host", f"{node.host} port {node.ssh.port}")
