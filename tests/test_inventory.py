import dataclasses
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from confluo.errors import ExitCode, InventoryError
from confluo.inventory import DEFAULT_CUSTOMIZATION_FILES, HaproxyBalancer, Inventory, Node, load_inventory
from confluo.secrets import SecretRef
from confluo.versions import Version

REPO = Path(__file__).resolve().parent.parent
DELETE = object()
CREDENTIAL_KEYS = "password_env, password_file, password_command, token_env, token_file, token_command"
EXACTLY_ONE = f"cluster.credentials: give exactly one of {CREDENTIAL_KEYS}"
INHERITABLE = " (set it on the node or under defaults)"
OUTSIDE = "must be a path inside the installation directory, without '..', got"
BALANCERS = "haproxy, nginx, apache, command"
NOT_A_VERSION = "not a Confluence version: {!r} (expected MAJOR.MINOR.PATCH, e.g. 9.2.14)"


def valid_document() -> dict[str, Any]:
    return {
        "cluster": {
            "name": "test",
            "api_url": "https://confluence.example.com",
            "credentials": {"username": "admin", "password_env": "CONFLUO_TEST_UNSET_PASSWORD"},
        },
        "target": {"version": "9.2.14", "archive": "/srv/dist/atlassian-confluence-9.2.14.tar.gz"},
        "database": "postgresql",
        "defaults": {
            "ssh": {"user": "deploy"},
            "install": {"base": "/opt/atlassian/confluence"},
            "home": "/var/atlassian/application-data/confluence",
        },
        "nodes": [{"name": f"node{n}", "host": f"10.0.0.1{n}", "url": f"http://10.0.0.1{n}:8090"} for n in (1, 2, 3)],
    }


def _set(document: dict[str, Any], location: str, value: object) -> None:
    """Set (or delete) the value at a location written as in a problem, e.g. `nodes[2].ssh.port`."""
    steps: list[str | int] = []
    for part in location.split("."):
        name, *indexes = re.split(r"\[(\d+)\]", part)
        steps += [name] if name else []
        steps += [int(index) for index in indexes if index]
    container: Any = document
    for step in steps[:-1]:
        if isinstance(step, str) and step not in container:
            container[step] = {}
        container = container[step]
    if value is DELETE:
        container.pop(steps[-1], None)
    else:
        container[steps[-1]] = value


def write(tmp_path: Path, changes: dict[str, object] | None = None, name: str = "inventory.yaml") -> Path:
    document = valid_document()
    for location, value in (changes or {}).items():
        _set(document, location, value)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


LOCATED = re.compile(r"line \d+, column \d+: ")


def unlocated(problems: tuple[str, ...]) -> tuple[str, ...]:
    """The problems without their `line L, column C: ` (tests of the position itself are in test_inventory_strict)."""
    return tuple(LOCATED.sub("", problem, count=1) for problem in problems)


def problems_of(path: Path, **kwargs: Any) -> tuple[str, ...]:
    with pytest.raises(InventoryError) as raised:
        load_inventory(path, **kwargs)
    return unlocated(raised.value.problems)


# --- files that must load -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [REPO / "inventory.sample.yaml", *sorted((REPO / "examples").glob("*.yaml"))],
    ids=lambda path: path.name,
)
def test_sample_and_every_example_load(path: Path) -> None:
    inventory = load_inventory(path)
    assert len(inventory.nodes) >= 2
    assert inventory.target.version > Version(7, 9, 0)


def test_examples_cover_what_their_names_promise() -> None:
    examples = {path.stem: load_inventory(path) for path in (REPO / "examples").glob("*.yaml")}
    symlink = examples["symlink-systemd-mysql"]
    assert (symlink.nodes[0].install.layout, symlink.nodes[0].service.kind, symlink.database) == (
        "symlink",
        "systemd",
        "mysql",
    )
    plain = examples["plain-initd-postgresql"]
    assert (plain.nodes[0].install.layout, plain.nodes[0].service.kind, plain.database) == (
        "plain",
        "initd",
        "postgresql",
    )
    shared = examples["shared-home-transfer"]
    assert shared.target.archive.startswith("https://")
    assert shared.target.sha256 is not None
    assert shared.target.transfer == "shared-home"
    assert shared.cluster.credentials.secret.kind == "token"
    assert all(node.ssh.alias for node in shared.nodes)


def test_a_valid_inventory_gets_every_documented_default(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path))

    assert inventory.cluster.verify_tls is True
    assert inventory.cluster.timeout_seconds == 10
    assert inventory.target.transfer == "per-node"
    assert inventory.target.sha256 is None  # a local archive: confluo computes it
    assert inventory.keep_releases == 3
    assert inventory.customizations == DEFAULT_CUSTOMIZATION_FILES
    assert inventory.load_balancer is None
    node = inventory.nodes[0]
    assert node.transport == "ssh"
    assert (node.ssh.port, node.ssh.key, node.ssh.alias, node.ssh.connect_timeout_seconds) == (22, None, None, 10)
    assert node.ssh.known_hosts == Path("~/.ssh/known_hosts").expanduser()
    assert (node.sudo, node.run_as) == (True, None)
    assert (node.install.layout, node.install.base) == ("symlink", PurePosixPath("/opt/atlassian/confluence"))
    assert (node.service.kind, node.service.name) == ("script", "confluence")
    assert (node.timeouts.stop_seconds, node.timeouts.start_seconds, node.timeouts.finalize_seconds) == (300, 900, 1800)
    assert node.min_free_disk_mb == 2048


def test_the_inventory_is_immutable(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        inventory.nodes[0].ssh.port = 2222  # type: ignore[misc]


def test_secrets_are_referenced_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONFLUO_TEST_UNSET_PASSWORD", raising=False)
    inventory = load_inventory(write(tmp_path))
    assert inventory.cluster.credentials.secret == SecretRef("password", "env", "CONFLUO_TEST_UNSET_PASSWORD")


# --- one problem at a time, with its exact location ----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"nodes[2].ssh.port": "abc"}, "nodes[2].ssh.port: expected an integer, got 'abc'"),
        ({"nodes[2].ssh.port": True}, "nodes[2].ssh.port: expected an integer, got true"),
        ({"nodes[2].ssh.port": 70000}, "nodes[2].ssh.port: expected an integer between 1 and 65535, got 70000"),
        ({"defaults.ssh.port": 22.5}, "defaults.ssh.port: expected an integer, got 22.5"),
        ({"nodes[1].home": "var/x"}, "nodes[1].home: must be an absolute path, got 'var/x'"),
        ({"defaults.home": "/var/../etc"}, "defaults.home: must not contain '..', got '/var/../etc'"),
        ({"defaults.install.layout": "copy"}, "defaults.install.layout: expected one of symlink, plain, got 'copy'"),
        (
            {"nodes[1].install": {"layout": "plain", "path": "/opt/c"}},
            "nodes[1].service.kind: install.layout plain needs service.kind initd or systemd (confluo repoints that "
            "service); or use install.layout symlink",
        ),
        (
            {"nodes[1].install": {"layout": "plain"}, "nodes[1].service": {"kind": "initd"}},
            "nodes[1].install.path: missing; layout plain needs the installation in use today as install.path"
            + INHERITABLE,
        ),
        (
            {"defaults.install.base": "opt/confluence"},
            "defaults.install.base: must be an absolute path, got 'opt/confluence'",
        ),
        ({"nodes[0].colour": "red"}, "nodes[0].colour: unknown key"),
        ({"defaults.name": "x"}, "defaults.name: unknown key"),
        (
            {"cluster.credentials.pasword_env": "X"},
            "cluster.credentials.pasword_env: unknown key (did you mean 'password_env'?)",
        ),
        ({"cluster.credentials.token_env": "T"}, f"{EXACTLY_ONE} (found password_env, token_env)"),
        ({"cluster.credentials.password_env": DELETE}, EXACTLY_ONE),
        (
            {"cluster.credentials.username": DELETE},
            "cluster.credentials.username: missing; password authentication needs a user name",
        ),
        (
            {"cluster.credentials.password_env": "1-BAD"},
            "cluster.credentials.password_env: expected an environment variable name "
            "(the value is not shown: it may be the secret itself)",
        ),
        (
            {"cluster.credentials.password_env": DELETE, "cluster.credentials.token_command": "'open"},
            "cluster.credentials.token_command: cannot split the command into words: No closing quotation",
        ),
        ({"cluster.credentials": DELETE}, "cluster.credentials: missing"),
        ({"cluster": DELETE}, "cluster: missing"),
        (
            {"cluster.api_url": "ftp://confluence"},
            "cluster.api_url: expected an http:// or https:// URL, got 'ftp://confluence'",
        ),
        ({"cluster.verify_tls": "no"}, "cluster.verify_tls: expected true or false, got 'no'"),
        ({"cluster.timeout_seconds": 0}, "cluster.timeout_seconds: expected a positive number of seconds, got 0"),
        ({"nodes[0].url": "10.0.0.11:8090"}, "nodes[0].url: expected an http:// or https:// URL, got '10.0.0.11:8090'"),
        ({"nodes[0].url": DELETE}, "nodes[0].url: missing"),
        ({"nodes[0].host": DELETE}, "nodes[0].host: missing; where SSH connects (or give ssh.alias)"),
        ({"nodes[0].sudo": "yes"}, "nodes[0].sudo: expected true or false, got 'yes'"),
        ({"nodes[0].transport": "telnet"}, "nodes[0].transport: expected one of ssh, local, got 'telnet'"),
        ({"nodes[0].run_as": "conf user"}, "nodes[0].run_as: expected a user name, got 'conf user'"),
        (
            {"nodes[0].service": {"kind": "systemd", "name": "x;reboot"}},
            "nodes[0].service.name: expected a service name (letters, digits, . _ @ -), got 'x;reboot'",
        ),
        ({"nodes[0].ssh": "deploy@host"}, "nodes[0].ssh: expected a mapping, got 'deploy@host'"),
        (
            {"defaults.timeouts.stop_seconds": -5},
            "defaults.timeouts.stop_seconds: expected a positive number of seconds, got -5",
        ),
        (
            {"defaults.min_free_disk_mb": -1},
            "defaults.min_free_disk_mb: expected an integer between 0 and 1073741824, got -1",
        ),
        ({"nodes[1].name": "node1"}, "nodes[1].name: 'node1' is already used by nodes[0]"),
        ({"nodes[1].host": "10.0.0.11"}, "nodes[1].host: 10.0.0.11 port 22 is already used by nodes[0]"),
        ({"nodes[1].url": "http://10.0.0.11:8090"}, "nodes[1].url: http://10.0.0.11:8090 is already used by nodes[0]"),
        ({"nodes": []}, "nodes: list at least one node"),
        ({"nodes": DELETE}, "nodes: missing; list at least one node"),
        ({"nodes": {"node1": {}}}, "nodes: expected a list of nodes, got a mapping"),
        ({"nodes[1]": "node2"}, "nodes[1]: expected a mapping, got 'node2'"),
        ({"target.version": "9.2.x"}, "target.version: " + NOT_A_VERSION.format("9.2.x")),
        ({"target.version": 9.1}, "target.version: write the version in quotes (YAML read 9.1 as a number)"),
        ({"target.version": DELETE}, "target.version: missing; give it here or with --to"),
        ({"target.version": None}, "target.version: missing; give it here or with --to"),
        ({"nodes[0].url": "http://[::1"}, "nodes[0].url: expected an http:// or https:// URL, got 'http://[::1'"),
        ({"nodes[0].name": None}, "nodes[0].name: missing"),
        ({"nodes[0].name": ""}, "nodes[0].name: expected a non-empty string, got ''"),
        ({"cluster.name": 42}, "cluster.name: expected a non-empty string, got 42"),
        (
            {"defaults.ssh.alias": "same-host", "nodes[2].ssh.alias": "other"},
            "nodes[1].ssh.alias: ssh alias 'same-host' is already used by nodes[0]",
        ),
        ({"target.archive": DELETE}, "target.archive: missing"),
        (
            {"target.archive": "s3://bucket/a.tar.gz"},
            "target.archive: expected an http(s) URL or a local path, got 's3://bucket/a.tar.gz'",
        ),
        (
            {"target.archive": "https://example.com/a.tar.gz"},
            "target.sha256: missing; an archive given by URL needs its SHA-256 checksum",
        ),
        ({"target.sha256": "abc"}, "target.sha256: expected 64 hexadecimal characters, got 'abc'"),
        ({"target.sha256": 0}, "target.sha256: write the checksum in quotes (YAML read it as a number)"),
        (
            {"target.transfer": "shared-home"},
            "target.shared_home: missing; target.transfer shared-home needs the shared home's path",
        ),
        ({"target.transfer": "rsync"}, "target.transfer: expected one of per-node, shared-home, got 'rsync'"),
        ({"target.shared_home": "shared"}, "target.shared_home: must be an absolute path, got 'shared'"),
        ({"database": "mongodb"}, "database: expected one of mysql, postgresql, oracle, sqlserver, got 'mongodb'"),
        ({"database": DELETE}, "database: missing; expected one of mysql, postgresql, oracle, sqlserver"),
        ({"keep_releases": 1}, "keep_releases: expected an integer between 2 and 100, got 1"),
        (
            {"customizations.extra_files": ["../etc/passwd"]},
            f"customizations.extra_files[0]: {OUTSIDE} '../etc/passwd'",
        ),
        (
            {"customizations.files": ["conf/server.xml", "/etc/hosts"]},
            f"customizations.files[1]: {OUTSIDE} '/etc/hosts'",
        ),
        (
            {"customizations.extra_files": "conf/keystore"},
            "customizations.extra_files: expected a list of paths, got 'conf/keystore'",
        ),
        ({"load_balancer": {"kind": "f5"}}, f"load_balancer.kind: expected one of {BALANCERS}, got 'f5'"),
        ({"load_balancer": {"host": "lb1"}}, f"load_balancer.kind: missing; expected one of {BALANCERS}"),
    ],
)
def test_each_problem_is_reported_at_its_location(tmp_path: Path, changes: dict[str, object], problem: str) -> None:
    path = write(tmp_path, changes)

    with pytest.raises(InventoryError) as raised:
        load_inventory(path)

    assert unlocated(raised.value.problems) == (problem,)  # and nothing else: one mistake, one problem
    assert str(raised.value) == f"{path}: {raised.value.problems[0]}"
    assert raised.value.exit_code is ExitCode.USAGE


@pytest.mark.parametrize(
    ("missing_default", "problem"),
    [
        ("defaults.home", "home: missing; the node's local home directory"),
        ("defaults.install.base", "install.base: missing; layout symlink keeps its releases in install.base"),
    ],
)
def test_a_setting_no_node_gets_is_reported_for_every_node(tmp_path: Path, missing_default: str, problem: str) -> None:
    problems = problems_of(write(tmp_path, {missing_default: DELETE}))
    assert problems == tuple(f"nodes[{index}].{problem}{INHERITABLE}" for index in range(3))


@pytest.mark.parametrize(
    "location",
    [
        "colour",
        "cluster.colour",
        "cluster.credentials.colour",
        "target.colour",
        "defaults.colour",
        "defaults.ssh.colour",
        "defaults.install.colour",
        "defaults.service.colour",
        "defaults.timeouts.colour",
        "customizations.colour",
        "load_balancer.colour",
        "nodes[1].colour",
        "nodes[1].ssh.colour",
        "nodes[1].install.colour",
        "nodes[1].timeouts.colour",
    ],
)
def test_unknown_keys_are_rejected_everywhere(tmp_path: Path, location: str) -> None:
    changes: dict[str, object] = {location: "x"}
    if location.startswith("load_balancer"):
        changes.update({"load_balancer.kind": "haproxy", "load_balancer.socket": "/h", "load_balancer.backend": "b"})
    assert problems_of(write(tmp_path, changes)) == (f"{location}: unknown key",)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "nodes[2].ssh.port": "abc",
            "nodes[1].home": "var/x",
            "defaults.install.layout": "copy",
            "nodes[0].colour": "red",
            "cluster.credentials.token_file": "/etc/confluo/token",
            "database": "db2",
        },
    )
    assert set(problems_of(path)) == {
        "nodes[2].ssh.port: expected an integer, got 'abc'",
        "nodes[1].home: must be an absolute path, got 'var/x'",
        "defaults.install.layout: expected one of symlink, plain, got 'copy'",
        "nodes[0].colour: unknown key",
        f"{EXACTLY_ONE} (found password_env, token_file)",
        "database: expected one of mysql, postgresql, oracle, sqlserver, got 'db2'",
    }


def test_a_wrong_default_is_reported_once_even_if_every_node_inherits_it(tmp_path: Path) -> None:
    path = write(tmp_path, {"defaults.ssh.port": "22"})
    assert problems_of(path) == ("defaults.ssh.port: expected an integer, got '22'",)


def test_a_wrong_default_is_reported_even_when_every_node_overrides_it(tmp_path: Path) -> None:
    changes: dict[str, object] = {f"nodes[{index}].ssh.port": 2222 for index in range(3)}
    changes["defaults.ssh.port"] = "abc"
    assert problems_of(write(tmp_path, changes)) == ("defaults.ssh.port: expected an integer, got 'abc'",)


# --- YAML itself --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "cluster:\n  name: x\n   api_url: y\n",
            "line 3, column 11: not valid YAML: mapping values are not allowed here",
        ),
        ("nodes: [a, b\ndatabase: mysql\n", "line 2, column 9: not valid YAML: expected ',' or ']', but got ':'"),
        ("", "expected a mapping of settings at the top level; the file is empty"),
        ("- node1\n- node2\n", "expected a mapping of settings at the top level; got a list"),
    ],
)
def test_yaml_errors_report_file_line_and_column(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    assert raised.value.problems == (problem,)
    assert str(raised.value) == f"{path}: {problem}"


def test_a_key_written_twice_is_reported_and_validation_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text("cluster:\n  name: x\n  name: y\n")
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    problems = raised.value.problems
    assert problems[0] == "line 3, column 3: cluster.name: written twice in this mapping (first on line 2)"
    assert "line 2, column 3: cluster.api_url: missing" in problems  # the rest of the file is still checked


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    document = valid_document()
    del document["nodes"]
    path = tmp_path / "anchors.yaml"
    path.write_text(
        yaml.safe_dump(document, sort_keys=False)
        + "nodes:\n"
        + "  - &first {name: node1, host: 10.0.0.11, url: 'http://10.0.0.11:8090'}\n"
        + "  - <<: *first\n    name: node2\n    url: 'http://10.0.0.12:8090'\n    ssh: {port: 2222}\n"
    )
    inventory = load_inventory(path)
    assert [(node.name, node.host, node.ssh.port) for node in inventory.nodes] == [
        ("node1", "10.0.0.11", 22),
        ("node2", "10.0.0.11", 2222),
    ]


def test_a_file_that_cannot_be_read_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as raised:
        load_inventory(tmp_path / "nope.yaml")
    assert raised.value.problems == ("cannot read the inventory: No such file or directory",)
    assert raised.value.exit_code is ExitCode.USAGE


# --- a node's settings: defaults deep-merged with its own keys ---------------------------------------------


def _attribute(node: Node, dotted: str) -> object:
    value: object = node
    for name in dotted.split("."):
        value = getattr(value, name)
    return value


@pytest.mark.parametrize(
    ("changes", "index", "attribute", "expected"),
    [
        ({"nodes[2].ssh.port": 2222}, 2, "ssh.port", 2222),
        ({"nodes[2].ssh.port": 2222}, 2, "ssh.user", "deploy"),  # the rest of defaults.ssh still applies
        ({"nodes[2].ssh.port": 2222}, 1, "ssh.port", 22),  # other nodes keep the default
        ({"defaults.ssh.port": 2200}, 0, "ssh.port", 2200),
        ({"nodes[0].ssh.user": "admin"}, 0, "ssh.user", "admin"),
        ({"defaults.ssh.key": "/keys/id"}, 1, "ssh.key", Path("/keys/id")),
        ({"defaults.ssh.key": "/keys/id", "nodes[1].ssh.key": None}, 1, "ssh.key", None),  # null drops a default
        (
            {"nodes[1].install": {"layout": "plain", "path": "/opt/c"}, "nodes[1].service": {"kind": "initd"}},
            1,
            "install.layout",
            "plain",
        ),
        (
            {"nodes[1].install": {"layout": "plain", "path": "/opt/c"}, "nodes[1].service": {"kind": "initd"}},
            1,
            "install.path",
            PurePosixPath("/opt/c"),
        ),
        (
            {"nodes[1].install": {"layout": "plain", "path": "/opt/c"}, "nodes[1].service": {"kind": "initd"}},
            0,
            "install.layout",
            "symlink",
        ),
        ({"nodes[0].home": "/data/confluence"}, 0, "home", PurePosixPath("/data/confluence")),
        ({"nodes[0].service": {"kind": "systemd"}}, 0, "service.kind", "systemd"),
        ({"nodes[0].service": {"kind": "systemd"}}, 0, "service.name", "confluence"),
        (
            {"nodes[0].service": {"kind": "systemd"}},
            0,
            "service.definition",
            PurePosixPath("/etc/systemd/system/confluence.service"),
        ),
        (
            {"nodes[0].service": {"kind": "initd", "name": "conf"}},
            0,
            "service.definition",
            PurePosixPath("/etc/init.d/conf"),
        ),
        (
            {"nodes[0].service": {"kind": "initd", "file": "/srv/init/c"}},
            0,
            "service.definition",
            PurePosixPath("/srv/init/c"),
        ),
        ({"nodes[0].service": {"kind": "script"}}, 0, "service.definition", None),
        ({"defaults.service": {"name": "conf"}, "nodes[0].service": {"kind": "initd"}}, 0, "service.name", "conf"),
        ({"nodes[0].timeouts": {"start_seconds": 60}}, 0, "timeouts.start_seconds", 60.0),
        ({"nodes[0].timeouts": {"start_seconds": 60}}, 0, "timeouts.stop_seconds", 300.0),
        ({"defaults.sudo": False, "nodes[2].sudo": True}, 2, "sudo", True),
        ({"defaults.sudo": False, "nodes[2].sudo": True}, 1, "sudo", False),
        ({"defaults.run_as": "confluence", "nodes[0].run_as": "conf2"}, 0, "run_as", "conf2"),
        ({"nodes[0].min_free_disk_mb": 100}, 0, "min_free_disk_mb", 100),
        ({"defaults.transport": "local"}, 0, "transport", "local"),
        ({"nodes[0].transport": "local"}, 0, "transport", "local"),
        ({"nodes[0].transport": "local", "nodes[0].host": DELETE}, 0, "host", "localhost"),
        ({"nodes[0].ssh": {"alias": "conf-a"}, "nodes[0].host": DELETE}, 0, "host", "conf-a"),
    ],
)
def test_node_settings_are_defaults_overridden_by_the_node(
    tmp_path: Path, changes: dict[str, object], index: int, attribute: str, expected: object
) -> None:
    inventory = load_inventory(write(tmp_path, changes))
    assert _attribute(inventory.nodes[index], attribute) == expected


def test_local_nodes_may_share_a_host(tmp_path: Path) -> None:
    inventory = load_inventory(
        write(tmp_path, {"defaults.transport": "local", "nodes[1].host": "10.0.0.11", "nodes[2].host": "10.0.0.11"})
    )
    assert {node.host for node in inventory.nodes} == {"10.0.0.11"}


def test_two_nodes_cannot_share_an_ssh_alias(tmp_path: Path) -> None:
    path = write(tmp_path, {"nodes[0].ssh": {"alias": "same"}, "nodes[2].ssh": {"alias": "same"}})
    assert problems_of(path) == ("nodes[2].ssh.alias: ssh alias 'same' is already used by nodes[0]",)


def test_the_same_host_on_another_port_is_another_node(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, {"nodes[1].host": "10.0.0.11", "nodes[1].ssh.port": 2222}))
    assert [(node.host, node.ssh.port) for node in inventory.nodes[:2]] == [("10.0.0.11", 22), ("10.0.0.11", 2222)]


# --- target version and --to --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "to", "expected"),
    [
        ({}, None, Version(9, 2, 14)),
        ({}, "9.2.15", Version(9, 2, 15)),
        ({"target.version": DELETE}, "9.3", Version(9, 3, 0)),
    ],
)
def test_to_overrides_the_target_version(
    tmp_path: Path, changes: dict[str, object], to: str | None, expected: Version
) -> None:
    assert load_inventory(write(tmp_path, changes), target_version=to).target.version == expected


def test_an_invalid_to_is_reported(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path), target_version="latest")
    assert problems == ("--to: " + NOT_A_VERSION.format("latest"),)


# --- paths, URLs, checksums, customizations -----------------------------------------------------------------


def test_local_paths_expand_home_and_resolve_from_the_inventory_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/home/ops")
    path = write(
        tmp_path,
        {
            "defaults.ssh.key": "~/.ssh/id_ed25519",
            "defaults.ssh.known_hosts": "keys/known_hosts",
            "target.archive": "dist/atlassian-confluence-9.2.14.tar.gz",
            "cluster.credentials.password_env": DELETE,
            "cluster.credentials.password_file": "~/.confluo-password",
        },
    )
    inventory = load_inventory(path)
    assert inventory.nodes[0].ssh.key == Path("/home/ops/.ssh/id_ed25519")
    assert inventory.nodes[0].ssh.known_hosts == tmp_path / "keys/known_hosts"
    assert inventory.target.archive == str(tmp_path / "dist/atlassian-confluence-9.2.14.tar.gz")
    assert inventory.cluster.credentials.secret == SecretRef("password", "file", "/home/ops/.confluo-password")


def test_an_archive_url_with_its_checksum(tmp_path: Path) -> None:
    checksum = "AB" * 32
    url = "https://product-downloads.atlassian.com/software/confluence/downloads/atlassian-confluence-9.2.14.tar.gz"
    inventory = load_inventory(write(tmp_path, {"target.archive": url, "target.sha256": checksum}))
    assert (inventory.target.archive, inventory.target.sha256) == (url, checksum.lower())


def test_api_url_loses_its_trailing_slash(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, {"cluster.api_url": "https://wiki.example.com/"}))
    assert inventory.cluster.api_url == "https://wiki.example.com"


@pytest.mark.parametrize(
    ("customizations", "expected"),
    [
        (DELETE, DEFAULT_CUSTOMIZATION_FILES),
        ({"extra_files": ["conf/keystore.jks"]}, (*DEFAULT_CUSTOMIZATION_FILES, "conf/keystore.jks")),
        (
            {"files": ["./conf//server.xml"], "extra_files": ["conf/server.xml", "bin/x.sh"]},
            ("conf/server.xml", "bin/x.sh"),
        ),
        ({"files": [], "extra_files": []}, ()),
    ],
)
def test_customizations(tmp_path: Path, customizations: object, expected: tuple[str, ...]) -> None:
    inventory = load_inventory(write(tmp_path, {"customizations": customizations}))
    assert inventory.customizations == expected


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ({"token_env": "CONFLUO_TOKEN"}, SecretRef("token", "env", "CONFLUO_TOKEN")),
        ({"token_command": "pass show confluence"}, SecretRef("token", "command", "pass show confluence")),
        ({"username": "a", "password_file": "/etc/confluo/pw"}, SecretRef("password", "file", "/etc/confluo/pw")),
    ],
)
def test_credentials_reference_exactly_one_secret(
    tmp_path: Path, credentials: dict[str, str], expected: SecretRef
) -> None:
    inventory = load_inventory(write(tmp_path, {"cluster.credentials": credentials}))
    assert inventory.cluster.credentials.secret == expected


def test_load_balancer_is_read_when_given(tmp_path: Path) -> None:
    lb = {"kind": "haproxy", "host": "lb1", "socket": "/run/haproxy/admin.sock", "backend": "confluence"}
    inventory: Inventory = load_inventory(write(tmp_path, {"load_balancer": lb}))
    balancer = inventory.load_balancer
    assert isinstance(balancer, HaproxyBalancer)
    assert (balancer.kind, balancer.host, balancer.socket, balancer.backend) == (
        "haproxy",
        "lb1",
        PurePosixPath("/run/haproxy/admin.sock"),
        "confluence",
    )
    assert balancer.remote is not None and balancer.remote.ssh.user == "deploy"  # defaults.ssh applies to it
