"""Issue 11: broken inventories get a located message, never a traceback, a hang or a silent acceptance."""

import json
import math
import os
import re
import time
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_inventory import DELETE, REPO, _set, problems_of, unlocated, valid_document, write

from confluo.errors import InventoryError
from confluo.inventory import (
    ApacheBalancer,
    CommandBalancer,
    HaproxyBalancer,
    NginxBalancer,
    check_inventory,
    json_schema,
    load_inventory,
)
from confluo.inventory.values import NODE_NAME

REGENERATE = (
    "python -c 'import json; from confluo.inventory import json_schema; "
    "print(json.dumps(json_schema(), indent=2, sort_keys=True))' > docs/inventory.schema.json"
)
LOCATED = re.compile(r"line (\d+), column (\d+): ")
SECONDS = "expected a positive number of seconds, got"


def raised(path: Path) -> InventoryError:
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    return error.value


def write_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


# --- values that used to crash the loader, or were accepted --------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"cluster.timeout_seconds": math.nan}, f"cluster.timeout_seconds: {SECONDS} nan"),
        ({"cluster.timeout_seconds": math.inf}, "cluster.timeout_seconds: expected at most 3600 seconds, got inf"),
        ({"defaults.ssh.connect_timeout_seconds": -math.inf}, f"defaults.ssh.connect_timeout_seconds: {SECONDS} -inf"),
        ({"defaults.timeouts.stop_seconds": math.nan}, f"defaults.timeouts.stop_seconds: {SECONDS} nan"),
        ({"nodes[0].timeouts.start_seconds": math.inf}, "nodes[0].timeouts.start_seconds: expected at most 604800 seconds, got inf"),
        ({"defaults.timeouts.finalize_seconds": 1e30}, "defaults.timeouts.finalize_seconds: expected at most 604800 seconds, got 1e+30"),
        ({"nodes[1].host": "a" * 64 + ".example.com"}, "nodes[1].host: each part of a host name has at most 63 characters, got one of 64"),
        ({"nodes[1].host": "knotén.example.com"}, "nodes[1].host: expected a host name in ASCII (an international name in its xn-- form), got 'knotén.example.com'"),
        ({"nodes[1].host": "deploy@10.0.0.12"}, "nodes[1].host: put the user in ssh.user, not in the host, got 'deploy@10.0.0.12'"),
        ({"nodes[1].host": "10.0.0.12:2222"}, "nodes[1].host: put the port in ssh.port, not in the host, got '10.0.0.12:2222'"),
        ({"nodes[1].host": "127.0.523"}, "nodes[1].host: neither an IP address (write four decimal numbers, a.b.c.d) nor a host name, got '127.0.523'"),
        ({"nodes[1].host": "[::1]"}, "nodes[1].host: write an IPv6 address without brackets, got '[::1]'"),
        ({"defaults.home": "/var/atlassian\n/x"}, "defaults.home: must not contain control characters, tabs or line breaks, got '/var/atlassian\\n/x'"),
        ({"nodes[0].name": "../node1"}, "nodes[0].name: expected a node name (letters and digits, with . _ - inside; at most 64 characters), got '../node1'"),
        ({"nodes[0].name": "node..1"}, "nodes[0].name: a node name must not contain '..', got 'node..1'"),
        ({"nodes[0].name": "node/1"}, "nodes[0].name: expected a node name (letters and digits, with . _ - inside; at most 64 characters), got 'node/1'"),
        ({"nodes[0].name": "node\t1"}, "nodes[0].name: must not contain control characters, tabs or line breaks, got 'node\\t1'"),
        ({"nodes[0].name": "node1\nnodes[9]: forged"}, "nodes[0].name: must not contain control characters, tabs or line breaks, got 'node1\\nnodes[9]: forged'"),
        ({"target.archive": "https://bob:hunter2@example.com/a.tar.gz", "target.sha256": "a" * 64}, "target.archive: must not hold a user name or password (give them under credentials), got 'https://******@example.com/a.tar.gz'"),
        ({"cluster.api_url": "https://admin:hunter2@wiki.example.com"}, "cluster.api_url: must not hold a user name or password (give them under credentials), got 'https://******@wiki.example.com'"),
        ({"cluster.credentials.password_env": DELETE, "cluster.credentials.token_env": "TÖKEN"}, "cluster.credentials.token_env: expected an environment variable name (the value is not shown: it may be the secret itself)"),
        ({"nodes[1].url": "HTTP://10.0.0.11:8090/"}, "nodes[1].url: http://10.0.0.11:8090 is already used by nodes[0]"),
        ({"nodes[0].id": "7A52C813", "nodes[2].id": "7a52c813"}, "nodes[2].id: the id '7a52c813' is already used by nodes[0]"),
        ({"nodes[0].host": "fe80::1", "nodes[1].host": "fe80:0:0::0001"}, "nodes[1].host: fe80::1 port 22 is already used by nodes[0]"),
        ({"nodes[0].host": "node1.example.com", "nodes[1].host": "NODE1.example.com."}, "nodes[1].host: node1.example.com port 22 is already used by nodes[0]"),
        ({"nodes[1].lb_server": "node1"}, "nodes[1].lb_server: the load balancer server 'node1' is already used by nodes[0]"),
        ({"customizations.files": [f"conf/{i:03}/" + "x" * 300 for i in range(300)]}, "customizations.files: 300 paths of 92700 characters in all: the probe names each on one command line, and a remote shell takes at most 65536 characters of them"),
        ({"on_failure": "retry"}, "on_failure: expected one of rollback, halt, got 'retry'"),
        ({"load_balancer": {"kind": "haproxy", "backend": "b"}}, "load_balancer.socket: missing"),
        ({"load_balancer": {"kind": "command", "drain": "lb off {server}", "ready": "lb on {server}"}}, "load_balancer.status: missing"),
        ({"load_balancer": {"kind": "command", "drain": "lb off {srv}", "ready": "lb on {server}", "status": "lb {server}"}}, "load_balancer.drain: unknown placeholder '{srv}': use {server}, {host}, {node} (write {{ and }} for braces)"),
        ({"load_balancer": {"kind": "nginx", "upstream_file": "/etc/u.conf", "upstream": "c", "on_drain_timeout": "wait"}}, "load_balancer.on_drain_timeout: expected one of halt, continue, got 'wait'"),
        ({"load_balancer": {"kind": "apache", "balancer_manager_url": "https://lb/bm", "balancer": "c", "colour": 1}}, "load_balancer.colour: unknown key"),
        ({"load_balancer": {"kind": "haproxy", "socket": "/s", "backend": "b", "weight_ramp": {"steps": 0}}}, "load_balancer.weight_ramp.steps: expected an integer between 1 and 100, got 0"),
        ({"load_balancer": {"kind": "haproxy", "socket": "/s", "backend": "b", "bakend": "c"}}, "load_balancer.bakend: unknown key (did you mean 'backend'?)"),
    ],
)  # fmt: skip
def test_strict_values(tmp_path: Path, changes: dict[str, object], problem: str) -> None:
    assert problems_of(write(tmp_path, changes)) == (problem,)


def test_values_are_normalised(tmp_path: Path) -> None:
    inventory = load_inventory(
        write(
            tmp_path,
            {
                "nodes[0].host": "Node1.Example.COM.",
                "nodes[0].url": "HTTP://Node1.example.com:80/",
                "nodes[1].host": "0:0::0:1",
                "defaults.home": "/var//atlassian/./home/",
            },
        )
    )
    first, second = inventory.nodes[:2]
    assert (first.host, first.url, second.host) == ("node1.example.com", "http://node1.example.com", "::1")
    assert first.home == PurePosixPath("/var/atlassian/home")


@pytest.mark.parametrize(
    ("section", "kind"),
    [
        ({"kind": "haproxy", "socket": "/run/haproxy/admin.sock", "backend": "confluence"}, HaproxyBalancer),
        ({"kind": "nginx", "upstream_file": "/etc/nginx/u.conf", "upstream": "confluence"}, NginxBalancer),
        ({"kind": "apache", "balancer_manager_url": "https://lb/balancer-manager", "balancer": "c"}, ApacheBalancer),
        (
            {
                "kind": "command",
                "drain": "lbctl off {server}",
                "ready": "lbctl on {server} {{x}}",
                "status": "lbctl show {server}",
            },
            CommandBalancer,
        ),
    ],
)
def test_each_load_balancer_kind(tmp_path: Path, section: dict[str, object], kind: type) -> None:
    inventory = load_inventory(write(tmp_path, {"load_balancer": section}))
    assert isinstance(inventory.load_balancer, kind)
    assert (inventory.load_balancer.drain_seconds, inventory.load_balancer.on_drain_timeout) == (120, "halt")
    assert inventory.on_failure == "rollback"
    assert inventory.nodes[0].balancer_server == "node1"


def test_nginx_defaults_and_lb_server(tmp_path: Path) -> None:
    lb = {"kind": "nginx", "upstream_file": "/etc/nginx/u.conf", "upstream": "c", "host": "Proxy.example.com"}
    inventory = load_inventory(write(tmp_path, {"load_balancer": lb, "nodes[0].lb_server": "conf-a"}))
    balancer = inventory.load_balancer
    assert isinstance(balancer, NginxBalancer)
    assert (balancer.reload_command, balancer.test_command, balancer.host) == (
        "nginx -s reload",
        "nginx -t",
        "proxy.example.com",
    )
    assert inventory.nodes[0].balancer_server == "conf-a"


# --- YAML: positions, repeated keys, 1.1 surprises, escaping -------------------------------------------------


def test_every_problem_has_its_line_and_column(tmp_path: Path) -> None:
    text = yaml.safe_dump(valid_document(), sort_keys=False).replace("port: 22", "port: 22")
    text = text.replace("  ssh:\n    user: deploy\n", "  ssh:\n    user: deploy\n    port: abc\n    colour: red\n")
    path = write_text(tmp_path, text)
    lines = text.splitlines()
    problems = raised(path).problems
    assert len(problems) == 2
    for problem in problems:
        match = LOCATED.match(problem)
        assert match, problem
        line, column = int(match[1]), int(match[2])
        key = "port" if "port" in problem else "colour"
        assert lines[line - 1][column - 1 :].startswith("abc" if key == "port" else "colour")


def test_every_repeated_key_is_reported(tmp_path: Path) -> None:
    text = yaml.safe_dump(valid_document(), sort_keys=False)
    text = text.replace("  name: test\n", "  name: test\n  name: again\n").replace(
        "database: postgresql\n", "database: postgresql\ndatabase: mysql\n"
    )
    problems = raised(write_text(tmp_path, text)).problems
    assert [LOCATED.sub("", p) for p in problems] == [
        "cluster.name: written twice in this mapping (first on line 2)",
        "database: written twice in this mapping (first on line 11)",
    ]


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("port: 022", "nodes[0].ssh.port: expected an integer, got '022' (YAML 1.1 reads 022 as the octal number 18: drop the leading zero)"),
        ("port: 0x16", "nodes[0].ssh.port: expected an integer, got '0x16' (write it as a plain decimal number)"),
        ("port: 2_222", "nodes[0].ssh.port: expected an integer, got '2_222' (write it as a plain decimal number)"),
        ("connect_timeout_seconds: 1:30", "nodes[0].ssh.connect_timeout_seconds: expected a positive number of seconds, got '1:30' (write it as a plain decimal number)"),
    ],
)  # fmt: skip
def test_yaml_1_1_numbers_are_refused_with_a_reason(tmp_path: Path, yaml_text: str, problem: str) -> None:
    text = yaml.safe_dump(valid_document(), sort_keys=False)
    text = text.replace("  url: http://10.0.0.11:8090\n", f"  url: http://10.0.0.11:8090\n  ssh:\n    {yaml_text}\n", 1)
    assert unlocated(raised(write_text(tmp_path, text)).problems) == (problem,)


def test_yes_and_on_are_not_booleans_and_a_key_is_taken_as_written(tmp_path: Path) -> None:
    text = yaml.safe_dump(valid_document(), sort_keys=False).replace(
        "  url: http://10.0.0.11:8090\n", "  url: http://10.0.0.11:8090\n  sudo: yes\n  on: 1\n", 1
    )
    assert unlocated(raised(write_text(tmp_path, text)).problems) == (
        "nodes[0].sudo: expected true or false, got 'yes' (YAML 1.1 reads yes as true, YAML 1.2 as text: write true)",
        "nodes[0].on: unknown key",
    )


def test_a_key_with_a_newline_cannot_forge_a_line(tmp_path: Path) -> None:
    text = yaml.safe_dump(valid_document(), sort_keys=False) + '"x\\nline 1, column 1: forged": 1\n'
    error = raised(write_text(tmp_path, text))
    assert len(str(error).splitlines()) == 1
    assert "['x\\nline 1, column 1: forged']: unknown key" in str(error)


def test_a_control_character_is_located_by_line_and_column(tmp_path: Path) -> None:
    path = write_text(tmp_path, "cluster:\n  name: te\x01st\n")
    assert raised(path).problems == (
        "line 2, column 11: not valid YAML: the character '\\x01' (U+0001) is not allowed",
    )


def test_a_huge_key_is_reported_quickly_and_shortly(tmp_path: Path) -> None:
    started = time.monotonic()
    error = raised(write_text(tmp_path, yaml.safe_dump(valid_document()) + "? " + "k" * 100_000 + "\n: 1\n"))
    assert time.monotonic() - started < 5
    assert "(100000 characters)" in str(error) and len(str(error)) < 300


# --- bounded input ---------------------------------------------------------------------------------------------


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    problems = raised(write_text(tmp_path, "a: " + "[" * 500 + "]" * 500 + "\n")).problems
    assert problems == ("line 1, column 19: not valid YAML: nested deeper than 16 levels",)


def test_alias_fan_out_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 {x: 1, y: 2}"]
    lines += [
        f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 9)}], k{i}: [{', '.join([f'*a{i - 1}'] * 9)}]}}"
        for i in range(1, 12)
    ]
    started = time.monotonic()
    problems = raised(write_text(tmp_path, "\n".join(lines) + "\n")).problems
    assert time.monotonic() - started < 5
    assert problems[0].endswith("more than 50000 values once aliases are expanded")


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    problems = raised(write_text(tmp_path, "nodes: &n [*n]\n")).problems
    assert "nodes[0]: an alias refers to a mapping or list that contains it" in unlocated(problems)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda tmp: (os.mkfifo(tmp / "fifo"), tmp / "fifo")[1], "cannot read the inventory: a named pipe (FIFO), not a regular file"),
        (lambda tmp: Path("/dev/zero"), "cannot read the inventory: a character device, not a regular file"),
        (lambda tmp: tmp, "cannot read the inventory: a directory, not a regular file"),
        (lambda tmp: (tmp / "big").write_text("#" * (1 << 21)) and tmp / "big", "the inventory is larger than 1024 KiB; it cannot be an inventory"),
        (lambda tmp: (tmp / "bin").write_bytes(b"a: \xff\n") and tmp / "bin", "line 1, column 4: not a UTF-8 text file (byte 0xff)"),
    ],
    ids=["fifo", "dev-zero", "directory", "too-big", "not-utf8"],
)  # fmt: skip
def test_only_a_regular_file_of_sane_size_is_read(tmp_path: Path, make: Any, problem: str) -> None:
    assert raised(make(tmp_path)).problems == (problem,)


# --- the JSON Schema and the check function -----------------------------------------------------------------


def test_the_committed_schema_is_current() -> None:
    committed = json.loads((REPO / "docs" / "inventory.schema.json").read_text())
    assert committed == json_schema(), f"regenerate it: {REGENERATE}"


@pytest.mark.parametrize(
    "path", [REPO / "inventory.sample.yaml", *sorted((REPO / "examples").glob("*.yaml"))], ids=lambda p: p.name
)
def test_the_schema_accepts_the_sample_and_every_example_and_they_name_it(path: Path) -> None:
    text = path.read_text()
    relative = os.path.relpath(REPO / "docs" / "inventory.schema.json", path.parent)
    assert text.startswith(
        f"# yaml-language-server: $schema={'./' if relative == os.path.basename(relative) else ''}{relative}\n"
    )
    jsonschema.validate(yaml.safe_load(text), json_schema())


def test_every_load_balancer_the_sample_documents_is_valid(tmp_path: Path) -> None:
    text = (REPO / "inventory.sample.yaml").read_text()
    blocks = re.findall(r"^# load_balancer:\n((?:#   .*\n)+)", text, re.MULTILINE)
    assert len(blocks) == 4
    for block in blocks:
        section = yaml.safe_load("\n".join(line[4:] for line in block.splitlines()))
        section.pop("ssh", None) if section["kind"] != "haproxy" else None
        load_inventory(write(tmp_path, {"load_balancer": section}))
        jsonschema.validate({**valid_document(), "load_balancer": section}, json_schema())


def test_the_schema_refuses_what_the_loader_refuses() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**valid_document(), "colour": 1}, json_schema())


def test_check_reports_the_local_files_it_names(tmp_path: Path) -> None:
    path = write(tmp_path, {"defaults.ssh.key": str(tmp_path), "target.archive": str(tmp_path / "absent.tar.gz")})
    problems = check_inventory(path)
    assert f"{path}: target.archive: {str(tmp_path / 'absent.tar.gz')!r} does not exist" in problems
    assert f"{path}: nodes[0].ssh.key: {str(tmp_path)!r} is not a regular file" in problems
    assert check_inventory(write(tmp_path, {"nodes[0].url": "x"}))[0].endswith(
        "nodes[0].url: expected an http:// or https:// URL, got 'x'"
    )


# --- property: no document crashes or hangs the loader, and what loads keeps the invariants -------------------

LOCATIONS = [
    "cluster", "cluster.name", "cluster.api_url", "cluster.timeout_seconds", "cluster.verify_tls",
    "cluster.credentials", "cluster.credentials.username", "cluster.credentials.password_env",
    "target", "target.version", "target.archive", "target.sha256", "target.transfer", "target.shared_home",
    "database", "defaults", "defaults.ssh", "defaults.ssh.port", "defaults.ssh.key", "defaults.home",
    "defaults.install", "defaults.install.layout", "defaults.service.kind", "defaults.timeouts.stop_seconds",
    "customizations.files", "keep_releases", "load_balancer", "load_balancer.kind", "on_failure", "nodes",
    "nodes[0]", "nodes[0].name", "nodes[1].host", "nodes[1].url", "nodes[2].id", "nodes[2].ssh",
    "nodes[2].ssh.alias", "nodes[0].transport", "nodes[1].lb_server", "nodes[0].colour",
]  # fmt: skip
TRICKY = [
    "", " ", "..", "/", "a/../b", "\n", "\t", "x\x00y", "\u202e", "é", "022", "yes", "on", "~", "null",
    "127.0.523", "[::1", "http://[::1", "https://u:p@h/", "user@host", "host:22", "a" * 64 + ".com", "{x}",
    "k" * 5000, "/var/../etc", "9.2", "9.2.14", "haproxy", "local", "plain", "shared-home",
]  # fmt: skip
VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.floats(),
        st.text(max_size=40),
        st.sampled_from(TRICKY),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["kind", "name", "x", "port"]), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


def _check_invariants(inventory: Any) -> None:
    names = [node.name for node in inventory.nodes]
    assert len(set(names)) == len(names)
    for node in inventory.nodes:
        assert NODE_NAME.fullmatch(node.name) and ".." not in node.name
        assert node.host and not any(c.isspace() or not c.isprintable() for c in node.host)
        assert 1 <= node.ssh.port <= 65535
        assert node.url.startswith(("http://", "https://")) and "@" not in node.url
        assert str(node.home).startswith("/") and ".." not in node.home.parts
        for seconds in (node.timeouts.stop_seconds, node.timeouts.start_seconds, node.ssh.connect_timeout_seconds):
            assert math.isfinite(seconds) and 0 < seconds <= 7 * 86400
    assert math.isfinite(inventory.cluster.timeout_seconds)
    assert "@" not in inventory.cluster.api_url.split("/")[2]


def _load_or_refuse(path: Path) -> None:
    try:
        inventory = load_inventory(path)
    except InventoryError as error:
        assert error.problems and all("\n" not in problem for problem in error.problems)
        return
    _check_invariants(inventory)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(LOCATIONS), VALUES, min_size=1, max_size=3))
def test_no_changed_document_crashes_the_loader(tmp_path: Path, changes: dict[str, object]) -> None:
    document = valid_document()
    for location, value in changes.items():
        try:
            _set(document, location, value)
        except (TypeError, KeyError, IndexError):
            continue  # the location no longer exists in this document
    path = tmp_path / "generated.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    _load_or_refuse(path)


FRAGMENTS = [*"ab:- \n[]{},&*<>!|'\"#%@`?~.0123456789\t\\", "<<: ", "&a ", "*a", "\x01", "é", "  ", "nodes:"]
YAMLISH = st.lists(st.sampled_from(FRAGMENTS), max_size=80).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=YAMLISH)
def test_no_text_crashes_the_loader(tmp_path: Path, text: str) -> None:
    path = tmp_path / "generated.yaml"
    path.write_text(text)
    _load_or_refuse(path)
