"""HAProxy's configuration and server-state file as text: a server line added as an administrator copies one, and
the state file's row that keeps the new server out of the pool at the reload. Pure: no HAProxy needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from confluo.loadbalancer.base import LoadBalancerError
from confluo.loadbalancer.haproxy import LocalSocket, parse_servers_state
from confluo.loadbalancer.haproxy_grow import GrowableHAProxy
from confluo.loadbalancer.haproxy_text import (
    servers_of,
    state_file_path,
    state_with_new_server,
    stickiness_problem,
    with_server,
)
from confluo.loadbalancer.host_files import HostFiles
from confluo.transport.local import LocalTransport

CONFIG = """\
global
    stats socket /run/haproxy/admin.sock mode 660 level admin
    server-state-base /var/lib/haproxy
    server-state-file confluence-state
defaults
    mode http
    load-server-state-from-file global
frontend www
    bind :80
    default_backend confluence
backend other
    server node1 10.0.9.1:80 check
backend confluence
    balance roundrobin
    cookie JSESSIONID prefix nocache
    # the wiki nodes
    server node1 10.0.0.1:8090 check cookie node1 id 11 addr 10.0.0.1 port 8091 weight 100  # rack A
    server node2 10.0.0.2:8090 check cookie node2 id 12 weight 100
listen stats
    bind :8404
"""

COLUMNS = (
    "be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state "
    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr "
    "srv_agent_addr srv_agent_port"
)
STATE = f"""\
1
# {COLUMNS}
3 other 1 node1 10.0.9.1 2 0 1 1 50 15 3 4 6 0 0 0 - 80 - 0 0 - - 0
4 confluence 11 node1 10.0.0.1 2 0 100 100 50 15 3 4 6 0 0 1 - 8090 - 0 8091 10.0.0.1 - 0
4 confluence 12 node2 10.0.0.2 2 8 100 100 50 15 3 4 6 0 0 1 - 8090 - 0 0 - - 0
"""


def test_the_new_line_is_the_donors_with_its_own_name_address_cookie_and_check_address_and_no_forced_id() -> None:
    added = with_server(CONFIG, "confluence", "node3", "10.0.0.3:8090", "node1", "node3, added", "h.cfg")
    new = "    server node3 10.0.0.3:8090 check cookie node3 addr 10.0.0.3 port 8091 weight 100  # node3, added"
    assert added.replace(new + "\n", "", 1) == CONFIG, "one line added, every other byte kept"
    assert added.index(new) > added.index("server node2 "), "after the backend's last server"
    assert [s.name for s in servers_of(added, "confluence") or []] == ["node1", "node2", "node3"]
    assert [s.name for s in servers_of(added, "other") or []] == ["node1"]
    assert with_server(added, "confluence", "node3", "10.0.0.3:8090", "node1", "again", "h.cfg") == added


@pytest.mark.parametrize(
    ("backend", "like", "message"),
    [
        ("wiki", "node1", "there is no `backend wiki` section"),
        ("confluence", "node9", r"backend confluence has no server node9 \(its servers: node1, node2\)"),
        ("stats", "node1", r"backend stats has no server node1 \(its servers: none\)"),
    ],
)
def test_a_missing_backend_or_donor_is_named(backend: str, like: str, message: str) -> None:
    with pytest.raises(LoadBalancerError, match=message):
        with_server(CONFIG, backend, "node3", "10.0.0.3:8090", like, "note", "h.cfg")


def test_the_state_file_is_where_the_configuration_loads_it_from() -> None:
    assert state_file_path(CONFIG) == "/var/lib/haproxy/confluence-state"
    assert state_file_path(CONFIG.replace("confluence-state", "/srv/state")) == "/srv/state"
    assert state_file_path(CONFIG.replace("load-server-state-from-file global", "")) is None
    assert state_file_path(CONFIG.replace("    server-state-file", "    # server-state-file")) is None


def test_the_new_servers_row_brings_it_up_in_maintenance_and_keeps_every_other_row() -> None:
    state = state_with_new_server(STATE, "confluence", "node3", "10.0.0.3:8090", "node1")
    assert state.startswith(STATE)
    rows = parse_servers_state(state.replace(STATE.splitlines()[2] + "\n", ""))  # the other backend's node1 aside
    assert (rows["node3"].admin_bits, rows["node3"].op_state, rows["node3"].initial_weight) == (1, 0, 100)
    assert (rows["node2"].admin_bits, rows["node1"].admin_bits) == (8, 0), "the drain of node2 is kept"
    fields = state.splitlines()[-1].split()
    assert fields[:5] == ["4", "confluence", "13", "node3", "10.0.0.3"] and fields[18] == "8090"
    with pytest.raises(LoadBalancerError, match="no server confluence/node9"):
        state_with_new_server(STATE, "confluence", "node3", "10.0.0.3:8090", "node9")


def test_without_a_loaded_state_file_the_plan_says_confluo_cannot_add_the_server(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.replace("load-server-state-from-file global", "load-server-state-from-file none"))
    files = HostFiles(LocalTransport("lb1"), sudo=False, where="lb1")
    lb = GrowableHAProxy(
        LocalSocket(str(tmp_path / "admin.sock")), "confluence", config_path=str(config), files=files,
        addresses={"node3": "10.0.0.3:8090"}, test_command=["true"], reload_command=["true"],
    )  # fmt: skip
    with pytest.raises(
        LoadBalancerError, match="no server-state-file loaded with `load-server-state-from-file global`"
    ):
        lb.describe_add("node3", "node1")
    config.write_text(CONFIG)
    assert lb.describe_add("node3", "node1").startswith("add `server node3 10.0.0.3:8090 …` (the parameters of node1")


@pytest.mark.parametrize(
    ("backend_lines", "problem"),
    [
        (
            "    cookie JSESSIONID prefix nocache\n    server a 1.1.1.1:80 cookie a\n    server b 1.1.1.2:80 cookie b",
            None,
        ),
        (
            "    cookie SERVERID insert\n    server a 1.1.1.1:80 cookie a\n    server b 1.1.1.2:80 check",
            "servers b have",
        ),
        ("    balance source\n    server a 1.1.1.1:80", None),
        ("    stick-table type ip size 1m\n    stick on src\n    server a 1.1.1.1:80", None),
        ("    stick-table type ip size 1m\n    server a 1.1.1.1:80", "has no `cookie`, `balance source` or `stick on`"),
        ("    balance roundrobin\n    # cookie SERVERID insert\n    server a 1.1.1.1:80", "has no `cookie`"),
    ],
)
def test_a_backend_whose_sessions_are_not_sticky_is_named(backend_lines: str, problem: str | None) -> None:
    text = f"global\ndefaults\n    mode http\nbackend confluence\n{backend_lines}\nbackend other\n    cookie X insert\n"
    found = stickiness_problem(text, "confluence")
    assert found is None if problem is None else (found is not None and found.startswith(problem)), found
    assert stickiness_problem(text, "missing") is None  # a backend it does not have is another check's business
