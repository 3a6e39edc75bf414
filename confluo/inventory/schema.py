"""The inventory file's schema: pydantic models of what may be written, with every rule on a single value.

These models describe the file, not the values confluo works with (those are `model.py`'s dataclasses, built by
`build.py`). Everything a node inherits is optional both under `defaults` and under a node, so each is checked
where it is written; what must be set somewhere is checked after the merge (`build.py`). Strict mode: no
coercion, so `port: "22"` and `sudo: yes` are refused rather than guessed. The same models give the JSON
Schema editors use (`json_schema()`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from confluo.inventory import values
from confluo.inventory.model import (
    DATABASES,
    LAYOUTS,
    MIN_KEEP_RELEASES,
    ON_DRAIN_TIMEOUT,
    ON_FAILURE,
    RESOLUTION_WORDS,
    SERVICE_KINDS,
    TRANSFER_MODES,
    TRANSPORTS,
    Database,
    Layout,
    OnDrainTimeout,
    OnFailure,
    ServiceKind,
    TransferMode,
    TransportKind,
)
from confluo.inventory.problems import describe
from confluo.versions import Version

MAX_NODES = 200
MAX_PATHS = 500
# The probe's command line names every carried file; Linux takes 128 KiB in one argument (MAX_ARG_STRLEN).
MAX_CARRIED_CHARACTERS = 64 * 1024
INVENTORY_ERROR = "inventory"  # the pydantic error type of every message written here
SECRET_KEYS = ("password_env", "password_file", "password_command", "token_env", "token_file", "token_command")


def fail(message: str, *, field: str | None = None) -> NoReturn:
    """Raise a validation error whose message is shown as written (after the location).

    `field` names the key below the current location the message is about, for a rule checked on a whole
    mapping (e.g. `sha256` is missing because `archive` is a URL).
    """
    # The message goes in the context, never in the template: a value with braces in it must stay as is.
    raise PydanticCustomError(INVENTORY_ERROR, "{message}", {"message": message, "field": field})


def _checked(check: Callable[[str], str]) -> Callable[[str], str]:
    def validate(value: str) -> str:
        try:
            return check(value)
        except values.Invalid as error:
            fail(error.message)

    return validate


def _with_base_dir(check: Callable[[str, Path], str]) -> Callable[[str, ValidationInfo], str]:
    def validate(value: str, info: ValidationInfo) -> str:
        context = info.context or {}
        try:
            return check(value, Path(context.get("base_dir", ".")))
        except values.Invalid as error:
            fail(error.message)

    return validate


_C = TypeVar("_C", bound=str)


def _one_of(options: tuple[_C, ...]) -> Callable[[object], object]:
    def validate(value: object) -> object:
        if not isinstance(value, str) or value not in options:
            fail(f"expected one of {', '.join(options)}, got {describe(value)}")
        return value

    return validate


def _int_between(low: int, high: int) -> Callable[[int], int]:
    def validate(value: int) -> int:
        if not low <= value <= high:
            fail(f"expected an integer between {low} and {high}, got {value}")
        return value

    return validate


def _seconds_up_to(maximum: float) -> Callable[[float], float]:
    def validate(value: float) -> float:
        if math.isnan(value) or value <= 0:
            fail(f"expected a positive number of seconds, got {_number(value)}")
        if not value <= maximum:  # infinity too
            fail(f"expected at most {maximum:g} seconds, got {_number(value)}")
        return float(value)

    return validate


def _number(value: float) -> str:
    """`5` for the 5 written (strict mode hands floats over as floats), `2.5`, `nan`, `1e+30`."""
    return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _schema(**keywords: Any) -> Any:
    return Field(json_schema_extra=keywords)


def _pattern(regex: str) -> Any:
    return _schema(pattern=f"^{regex}$")


# --- value types ----------------------------------------------------------------------------------------------

Text = Annotated[str, AfterValidator(_checked(values.text)), _schema(minLength=1)]
NodeName = Annotated[str, AfterValidator(_checked(values.node_name)), _pattern(values.NODE_NAME.pattern)]
NodeId = Annotated[
    str,
    AfterValidator(_checked(lambda v: values.matching(v, values.NODE_ID, "a node id (letters, digits, - _ .)"))),
    _pattern(values.NODE_ID.pattern),
]
UserName = Annotated[
    str,
    AfterValidator(_checked(lambda v: values.matching(v, values.USER_NAME, "a user name"))),
    _pattern(values.USER_NAME.pattern),
]
ServiceName = Annotated[
    str,
    AfterValidator(
        _checked(lambda v: values.matching(v, values.SERVICE_NAME, "a service name (letters, digits, . _ @ -)"))
    ),
    _pattern(values.SERVICE_NAME.pattern),
]
ProxyName = Annotated[
    str,
    AfterValidator(_checked(lambda v: values.matching(v, values.PROXY_NAME, "a name (letters, digits, . _ : -)"))),
    _pattern(values.PROXY_NAME.pattern),
]
SshAlias = Annotated[
    str,
    AfterValidator(_checked(lambda v: values.matching(v, values.SSH_ALIAS, "a Host name from ~/.ssh/config"))),
    _pattern(values.SSH_ALIAS.pattern),
]
EnvName = Annotated[
    str,
    AfterValidator(
        _checked(lambda v: values.matching(v, values.ENV_NAME, "an environment variable name", secret=True))
    ),
    _pattern(values.ENV_NAME.pattern),
]
Host = Annotated[str, AfterValidator(_checked(values.host)), _schema(minLength=1, maxLength=values.MAX_HOST)]
HttpUrl = Annotated[str, AfterValidator(_checked(values.http_url)), _pattern("[hH][tT][tT][pP][sS]?://.+")]
RemotePath = Annotated[str, AfterValidator(_checked(values.remote_path)), _pattern("/.*")]
LocalPath = Annotated[str, AfterValidator(_with_base_dir(values.local_path)), _schema(minLength=1)]
RelativePath = Annotated[str, AfterValidator(_checked(values.relative_path)), _schema(minLength=1)]
Command = Annotated[str, AfterValidator(_checked(values.command)), _schema(minLength=1)]
CommandTemplate = Annotated[str, AfterValidator(_checked(values.command_template)), _schema(minLength=1)]

Port = Annotated[int, AfterValidator(_int_between(1, 65535)), _schema(minimum=1, maximum=65535)]
KeepReleases = Annotated[
    int, AfterValidator(_int_between(MIN_KEEP_RELEASES, 100)), _schema(minimum=MIN_KEEP_RELEASES, maximum=100)
]
Megabytes = Annotated[int, AfterValidator(_int_between(0, 1 << 30)), _schema(minimum=0, maximum=1 << 30)]
RampSteps = Annotated[int, AfterValidator(_int_between(1, 100)), _schema(minimum=1, maximum=100)]
RequestSeconds = Annotated[float, AfterValidator(_seconds_up_to(3600)), _schema(exclusiveMinimum=0, maximum=3600)]
PhaseSeconds = Annotated[
    float, AfterValidator(_seconds_up_to(7 * 86400)), _schema(exclusiveMinimum=0, maximum=7 * 86400)
]

Transport = Annotated[TransportKind, BeforeValidator(_one_of(TRANSPORTS))]
LayoutChoice = Annotated[Layout, BeforeValidator(_one_of(LAYOUTS))]
ServiceKindChoice = Annotated[ServiceKind, BeforeValidator(_one_of(SERVICE_KINDS))]
TransferChoice = Annotated[TransferMode, BeforeValidator(_one_of(TRANSFER_MODES))]
DatabaseChoice = Annotated[Database, BeforeValidator(_one_of(DATABASES))]
OnFailureChoice = Annotated[OnFailure, BeforeValidator(_one_of(ON_FAILURE))]
OnDrainTimeoutChoice = Annotated[OnDrainTimeout, BeforeValidator(_one_of(ON_DRAIN_TIMEOUT))]


def _version_text(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # YAML reads `9.2` as the number 9.2 and `9.10` as 9.1, so the text must be quoted.
        fail(f"write the version in quotes (YAML read {value!r} as a number)")
    if not isinstance(value, str):
        fail(f"expected a version such as 9.2.14, got {describe(value)}")
    try:
        Version.parse(value)
    except ValueError as error:
        fail(str(error))
    return value


def _sha256_text(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # An all-digit checksum reads as a number in YAML (and loses its leading zeros).
        fail("write the checksum in quotes (YAML read it as a number)")
    if not isinstance(value, str) or not values.SHA256.fullmatch(value):
        fail(f"expected 64 hexadecimal characters, got {describe(value)}")
    return value.lower()


def _list_of(what: str, *, at_least_one: str | None = None, at_most: int) -> Callable[[object], object]:
    def validate(value: object) -> object:
        if not isinstance(value, list):
            fail(f"expected a list of {what}, got {describe(value)}")
        if at_least_one and not value:
            fail(at_least_one)
        if len(value) > at_most:
            fail(f"expected at most {at_most} {what}, got {len(value)}")
        return value

    return validate


def _archive(value: str, base_dir: Path) -> str:
    """An http(s) URL or a local path (made absolute)."""
    if "://" not in value:
        return values.local_path(value, base_dir)
    if not value.lower().startswith(("http://", "https://")):
        raise values.Invalid(f"expected an http(s) URL or a local path, got {values.displayed_url(value)}")
    return values.http_url(value, keep_path=True)


VersionText = Annotated[str, BeforeValidator(_version_text), _schema(pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")]
Sha256 = Annotated[str, BeforeValidator(_sha256_text), _pattern("[0-9a-fA-F]{64}")]
Archive = Annotated[str, AfterValidator(_with_base_dir(_archive)), _schema(minLength=1)]


def _resolution(value: str, base_dir: Path) -> str:
    """keep-mine, take-release, or the path of a file on this machine that holds the resolved text."""
    return value if value in RESOLUTION_WORDS else values.local_path(value, base_dir)


Resolution = Annotated[
    str,
    AfterValidator(_with_base_dir(_resolution)),
    _schema(minLength=1, examples=[*RESOLUTION_WORDS, "resolved/server.xml"]),
]


# --- sections -------------------------------------------------------------------------------------------------


class Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True, hide_input_in_errors=True
    )


class SshSection(Section):
    """How confluo reaches a machine over SSH."""

    user: UserName | None = None
    """The login user (default: ssh_config's, or the local user)."""
    port: Port | None = None
    """The SSH port (default 22)."""
    key: LocalPath | None = None
    """A private key file; omit to use ssh-agent or the default keys."""
    known_hosts: LocalPath | None = None
    """The known_hosts file host keys are verified against (default ~/.ssh/known_hosts)."""
    alias: SshAlias | None = None
    """A Host of ~/.ssh/config (HostName, User, Port, IdentityFile and ProxyJump are taken from it)."""
    connect_timeout_seconds: RequestSeconds | None = None
    """Seconds to wait for the connection (default 10)."""


class InstallSection(Section):
    """Where Confluence is installed on the node."""

    layout: LayoutChoice | None = None
    """symlink (default): releases side by side in `base`, `<base>/current` in use; plain: one directory, `path`."""
    base: RemotePath | None = None
    """symlink layout: the directory holding <version>/ and current."""
    path: RemotePath | None = None
    """plain layout: the installation in use today."""


class ServiceSection(Section):
    """How Confluence is stopped, started and pointed at a new installation."""

    kind: ServiceKindChoice | None = None
    """script (bin/stop-confluence.sh, default), initd or systemd."""
    name: ServiceName | None = None
    """The init.d script or systemd unit name (default confluence)."""
    file: RemotePath | None = None
    """The script or unit confluo rewrites (default /etc/init.d/<name> or /etc/systemd/system/<name>.service)."""


class TimeoutsSection(Section):
    """Seconds each phase may take before the run halts."""

    stop_seconds: PhaseSeconds | None = None
    """Graceful stop until the node is OFFLINE (default 300)."""
    start_seconds: PhaseSeconds | None = None
    """Start until the node is RUNNING and ACTIVE (default 900)."""
    finalize_seconds: PhaseSeconds | None = None
    """Upgrade tasks after approval, until STABLE (default 1800)."""
    min_ready_seconds: PhaseSeconds | None = None
    """How long an upgraded node must keep serving before the next node is stopped (default 0)."""
    kill_grace_seconds: PhaseSeconds | None = None
    """A node still running after stop_seconds is sent SIGTERM again, then SIGKILL: how long each is given to end
    the process (default 30)."""
    page_view_seconds: PhaseSeconds | None = None
    """A node just ACTIVE must serve a page (read and rendered on its own URL, as the API user): how long its page
    reads may fail before the start counts as failed, within start_seconds (default 60)."""
    index_seconds: PhaseSeconds | None = None
    """A node just started is kept out of the load balancer until its search index has caught up with the other
    nodes' (<local-home>/journal/main_index): how long, before the run goes on saying how far behind (default 60)."""


class NodeSettingsSection(Section):
    """Settings a node inherits from `defaults` and may override; each may be written in either place."""

    transport: Transport | None = None
    """ssh (default), or local: run commands on this machine without SSH."""
    ssh: SshSection | None = None
    sudo: bool | None = None
    """Run changes as `sudo -n` (default true)."""
    run_as: UserName | None = None
    """The user Confluence runs as."""
    install: InstallSection | None = None
    home: RemotePath | None = None
    """The node's local home directory (never touched). Required here or under defaults."""
    service: ServiceSection | None = None
    timeouts: TimeoutsSection | None = None
    min_free_disk_mb: Megabytes | None = None
    """Free space needed where the new release goes (default 2048)."""


class NodeSection(NodeSettingsSection):
    """One node of the cluster."""

    name: NodeName
    """The node's name in the cluster (confluence.cluster.node.name)."""
    id: NodeId | None = None
    """Its id in the ZDU API, where names do not tell nodes apart."""
    host: Host | None = None
    """Where SSH connects: a host name or an IP address (not needed with ssh.alias or transport local)."""
    url: HttpUrl
    """The node's own URL, for /status."""
    lb_server: ProxyName | None = None
    """The node's server name in the load balancer (default: its name)."""


class SynchronyTimeoutsSection(Section):
    """Seconds each phase of a Synchrony node's restart may take before the run halts."""

    stop_seconds: PhaseSeconds | None = None
    """stop-synchrony.sh until the process is gone and the heartbeat down (default 60)."""
    start_seconds: PhaseSeconds | None = None
    """start-synchrony.sh until the heartbeat answers OK (default 300)."""


class SynchronySettingsSection(Section):
    """Settings the Synchrony nodes share (written under `synchrony`) or set for themselves; transport, ssh and
    sudo are taken from `defaults` first."""

    transport: Transport | None = None
    """ssh (default), or local."""
    ssh: SshSection | None = None
    """Over defaults.ssh."""
    sudo: bool | None = None
    """Replace the jar as `sudo -n` (default: defaults.sudo, else true)."""
    run_as: UserName | None = None
    """The user Synchrony runs as: start-synchrony.sh and stop-synchrony.sh run as it (not inherited from
    defaults, which names Confluence's user)."""
    home: RemotePath | None = None
    """The Synchrony home: it holds synchrony-standalone.jar, start-synchrony.sh and stop-synchrony.sh."""
    timeouts: SynchronyTimeoutsSection | None = None


class SynchronyNodeSection(SynchronySettingsSection):
    """One node of the standalone Synchrony cluster."""

    name: NodeName
    """A name for the node, shown in plans and events (not one of the Confluence nodes' names)."""
    host: Host | None = None
    """Where SSH connects (not needed with ssh.alias or transport local)."""
    heartbeat_url: HttpUrl
    """Answers 200 "OK" while Synchrony serves, e.g. http://10.0.0.21:8091/synchrony/heartbeat."""


class SynchronySection(SynchronySettingsSection):
    """A standalone Synchrony cluster (collaborative editing): once the first Confluence node runs the target,
    each Synchrony node gets that node's synchrony-standalone.jar, one at a time."""

    nodes: Annotated[
        list[SynchronyNodeSection],
        BeforeValidator(
            _list_of("Synchrony nodes", at_least_one="list at least one Synchrony node", at_most=MAX_NODES)
        ),
        _schema(minItems=1),
    ]


class CredentialsSection(Section):
    """Where confluo reads the secret: exactly one of the *_env, *_file, *_command keys."""

    username: Text | None = None
    """A system administrator (needed with a password)."""
    password_env: EnvName | None = None
    password_file: LocalPath | None = None
    """A file whose first line is the password (mode 0600)."""
    password_command: Command | None = None
    """A command whose first output line is the password (run without a shell)."""
    token_env: EnvName | None = None
    token_file: LocalPath | None = None
    token_command: Command | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> CredentialsSection:
        given = [key for key in SECRET_KEYS if getattr(self, key) is not None]
        if len(given) != 1:
            found = f" (found {', '.join(given)})" if given else ""
            fail(f"give exactly one of {', '.join(SECRET_KEYS)}{found}")
        if given[0].startswith("password") and self.username is None:
            fail("missing; password authentication needs a user name", field="username")
        return self


class ClusterSection(Section):
    """The cluster and its REST API."""

    name: Text
    """Free text, shown in plans and logs."""
    api_url: HttpUrl
    """Base URL of the Confluence REST API, usually the load balancer."""
    verify_tls: bool = True
    timeout_seconds: RequestSeconds = 10.0
    """Seconds per HTTP request."""
    credentials: CredentialsSection


class TargetSection(Section):
    """The release to upgrade to."""

    version: VersionText | None = None
    """e.g. 9.2.14, in quotes if it could read as a number; --to overrides it."""
    archive: Archive
    """The .tar.gz: a local path or an http(s) URL."""
    sha256: Sha256 | None = None
    """The archive's SHA-256, in quotes; required for a URL."""
    transfer: TransferChoice = "per-node"
    """per-node: sent to every node; shared-home: sent once into the shared home."""
    shared_home: RemotePath | None = None
    """The shared home's path on the nodes: for shared-home, and for the cluster lock (.confluo-lock in it)."""

    @model_validator(mode="after")
    def _needs(self) -> TargetSection:
        if "://" in self.archive and self.sha256 is None:
            fail("missing; an archive given by URL needs its SHA-256 checksum", field="sha256")
        if self.transfer == "shared-home" and self.shared_home is None:
            fail("missing; target.transfer shared-home needs the shared home's path", field="shared_home")
        return self


class CustomizationsSection(Section):
    """Files carried from the old installation into the new one, relative to the installation directory."""

    files: Annotated[list[RelativePath], BeforeValidator(_list_of("paths", at_most=MAX_PATHS))] | None = None
    """Replaces the default list."""
    extra_files: Annotated[list[RelativePath], BeforeValidator(_list_of("paths", at_most=MAX_PATHS))] | None = None
    """Added to the list."""
    base_archive: Archive | None = None
    """The archive of the release the nodes run now (a local path or an http(s) URL): its stock files are the
    base of the three-way merge when the installation was not extracted by confluo."""
    base_sha256: Sha256 | None = None
    """base_archive's SHA-256, in quotes; required for a URL."""
    accept_two_way: bool = False
    """Without a base, keep your files whole (the release's changes to them are lost) instead of refusing."""
    resolve: dict[RelativePath, Resolution] | None = None
    """Per file: keep-mine, take-release, or the path of a file holding the resolved text."""

    @model_validator(mode="after")
    def _needs(self) -> CustomizationsSection:
        if self.base_archive is not None and "://" in self.base_archive and self.base_sha256 is None:
            fail("missing; an archive given by URL needs its SHA-256 checksum", field="base_sha256")
        carried = [*(self.files or ()), *(self.extra_files or ())]
        if sum(len(path) + 1 for path in carried) > MAX_CARRIED_CHARACTERS:
            fail(
                f"{len(carried)} paths of {sum(map(len, carried))} characters in all: the probe names each on one "
                f"command line, and a remote shell takes at most {MAX_CARRIED_CHARACTERS} characters of them",
                field="files" if self.files else "extra_files",
            )
        return self


# --- load balancers ---------------------------------------------------------------------------------------------


class BalancerSection(Section):
    """What every kind of load balancer shares."""

    drain_seconds: PhaseSeconds = 120.0
    """How long a node may take to lose its sessions once drained."""
    on_drain_timeout: OnDrainTimeoutChoice = "halt"
    """halt (default) or continue when a drain has not finished in time."""


class WeightRampSection(Section):
    """Bring a node back gradually: its weight rises to 100% in `steps` over `seconds`."""

    steps: RampSteps = 4
    seconds: PhaseSeconds = 60.0


class HaproxySection(BalancerSection):
    """HAProxy, driven through its runtime API socket."""

    kind: Literal["haproxy"]
    socket: RemotePath
    """The admin socket (`stats socket ... level admin`)."""
    backend: ProxyName
    """The backend holding the Confluence servers."""
    config: RemotePath | None = None
    """HAProxy's configuration file, read to check that a reload keeps drained servers out (server-state-file);
    add-node adds a new node's server to it."""
    reload_command: Command = "systemctl reload haproxy"
    """How HAProxy is reloaded after add-node adds a server to `config`."""
    test_command: Command | None = None
    """How an edited `config` is checked before the reload (omit: `haproxy -c -q -f CONFIG`)."""
    host: Host | None = None
    """The machine HAProxy runs on, reached over SSH (omit: this machine)."""
    ssh: SshSection | None = None
    """SSH settings for `host`, over defaults.ssh."""
    weight_ramp: WeightRampSection | None = None


class NginxSection(BalancerSection):
    """nginx: confluo edits the upstream's server lines, tests the configuration and reloads."""

    kind: Literal["nginx"]
    upstream_file: RemotePath
    """The file holding the upstream's `server` lines."""
    upstream: ProxyName
    """The upstream's name."""
    reload_command: Command = "nginx -s reload"
    test_command: Command = "nginx -t"
    pid_file: RemotePath = "/run/nginx.pid"
    """nginx's pid file: a reload is proven by the master's new workers."""
    host: Host | None = None
    """The machine nginx runs on, reached over SSH (omit: this machine)."""
    ssh: SshSection | None = None
    """SSH settings for `host`, over defaults.ssh."""


class ApacheSection(BalancerSection):
    """Apache httpd mod_proxy_balancer, through its balancer-manager page."""

    kind: Literal["apache"]
    balancer_manager_url: HttpUrl
    balancer: ProxyName
    """The name after balancer:// in the configuration."""
    verify_tls: bool = True
    credentials: CredentialsSection | None = None
    """For a balancer-manager behind authentication."""


class CommandSection(BalancerSection):
    """Your own commands, run on this machine; {server}, {host} and {node} are replaced for each node."""

    kind: Literal["command"]
    drain: CommandTemplate
    """Take the server out of rotation."""
    ready: CommandTemplate
    """Put it back."""
    status: CommandTemplate
    """Print its state as the last line: ready, drain or maint. Run after every change: each is read back."""
    maint: CommandTemplate | None = None
    """Take it out entirely (optional: without it, the drain is all this load balancer offers)."""


LoadBalancerSection = Annotated[
    HaproxySection | NginxSection | ApacheSection | CommandSection, Field(discriminator="kind")
]


class InventoryFile(Section):
    """A confluo inventory: the cluster, the release to upgrade to, and how to reach every node."""

    model_config = ConfigDict(title="confluo inventory")

    cluster: ClusterSection
    target: TargetSection
    database: DatabaseChoice
    """The cluster's database; for mysql and oracle the JDBC driver is carried into the new release."""
    defaults: NodeSettingsSection | None = None
    """Settings every node inherits."""
    customizations: CustomizationsSection | None = None
    keep_releases: KeepReleases = 3
    """Installations kept per node (never the one in use or the previous one)."""
    load_balancer: LoadBalancerSection | None = None
    """A load balancer confluo takes each node out of before stopping it."""
    on_failure: OnFailureChoice = "rollback"
    """When a node fails during an upgrade: rollback (that node returns to its old release) or halt."""
    synchrony: SynchronySection | None = None
    """Standalone Synchrony nodes (omit when Confluence manages Synchrony itself)."""
    nodes: Annotated[
        list[NodeSection],
        BeforeValidator(_list_of("nodes", at_least_one="list at least one node", at_most=MAX_NODES)),
        _schema(minItems=1),
    ]


# What a missing key's message adds, by where it is (list indexes left out).
MISSING_HINTS: dict[tuple[str, ...], str] = {
    ("database",): "expected one of " + ", ".join(DATABASES),
    ("nodes",): "list at least one node",
    ("synchrony", "nodes"): "list at least one Synchrony node",
}

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the inventory file, for editors (yaml-language-server) and other tools."""
    schema = InventoryFile.model_json_schema(mode="validation")
    return {"$schema": SCHEMA_URI, **schema}
