"""The nginx adapter against a real nginx: an upstream file included by the main config, edited and reloaded."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lbkit import Pool, Running, nginx, nginx_argv, send, workdir

from confluo.loadbalancer.base import AdminState, ChangeNotApplied, LoadBalancerError
from confluo.loadbalancer.nginx import NginxUpstream
from confluo.loadbalancer.nginx_text import directives_of, servers_of, with_down, with_server
from confluo.transport.local import LocalTransport


@pytest.fixture
def lb(pool: Pool) -> Iterator[Running]:
    with workdir() as directory, nginx(directory, pool) as running:
        yield running


def adapter(lb: Running, pool: Pool, **options: object) -> NginxUpstream:
    main, binary = Path(lb.extra["main"]), lb.extra["binary"]
    settings: dict[str, object] = {
        "addresses": {b.name: b.address for b in pool.members},
        "test_command": nginx_argv(binary, lb.dir, main, "-t", "-q"),
        "reload_command": nginx_argv(binary, lb.dir, main, "-s", "reload"),
        "pid_file": str(lb.dir / "nginx.pid"),
        "reload_seconds": 10.0,
        **options,
    }
    return NginxUpstream(LocalTransport("lb1"), lb.extra["upstream"], "confluence", **settings)  # type: ignore[arg-type]


def routed(pool: Pool, lb: Running, count: int = 15) -> dict[str, int]:
    pool.reset()
    send(lb.url, count)
    return pool.hits()


def test_down_and_back_change_where_requests_go_and_touch_nothing_else(pool: Pool, lb: Running) -> None:
    upstream = Path(lb.extra["upstream"])
    original = upstream.read_text()
    nginx_lb = adapter(lb, pool)
    assert all(hits > 0 for hits in routed(pool, lb).values())

    nginx_lb.drain("n2")
    state = nginx_lb.state("n2")
    assert (state.admin, state.healthy, state.sessions) == (AdminState.MAINT, None, None)
    hits = routed(pool, lb)
    assert hits["n2"] == 0 and hits["n1"] > 0 and hits["n3"] > 0
    changed = [line for line in upstream.read_text().splitlines() if line not in original.splitlines()]
    assert changed == [f"    server {pool['n2'].address} weight=1 max_fails=0 down;  # n2"]

    nginx_lb.maint("n2")  # already down: no edit, no reload, still read back
    nginx_lb.ready("n2")
    assert nginx_lb.state("n2").admin is AdminState.READY
    assert routed(pool, lb)["n2"] > 0
    assert upstream.read_text() == original
    assert sorted(p.name for p in lb.dir.iterdir() if "confluo" in p.name) == []


def test_a_bad_configuration_is_refused_and_the_good_one_keeps_serving(pool: Pool, lb: Running) -> None:
    upstream = Path(lb.extra["upstream"])
    # Someone broke the file without reloading: nginx still runs the good configuration.
    broken = upstream.read_text().replace("upstream other {", "upstream other {\n    no_such_directive on;")
    upstream.write_text(broken)
    with pytest.raises(LoadBalancerError, match=r"refused the configuration .*nginx was not reloaded") as caught:
        adapter(lb, pool).drain("n2")
    assert "no_such_directive" in caught.value.message
    assert upstream.read_text() == broken  # the previous file is back, not the one with n2 down
    assert routed(pool, lb)["n2"] > 0  # and the running nginx never saw either
    assert [p.name for p in lb.dir.iterdir() if "confluo" in p.name] == []


def test_a_reload_that_does_not_happen_is_detected(pool: Pool, lb: Running) -> None:
    upstream = Path(lb.extra["upstream"])
    good = upstream.read_text()
    nginx_lb = adapter(lb, pool, reload_command=("true",), reload_seconds=1.0)
    with pytest.raises(ChangeNotApplied, match=r"started no new workers within 1 s.*the previous file is back"):
        nginx_lb.maint("n1")
    assert routed(pool, lb)["n1"] > 0  # nginx did not take the change: exactly what was reported
    # The file says again what nginx runs, so a second attempt changes it and reloads rather than trusting it.
    assert upstream.read_text() == good and nginx_lb.state("n1").admin is AdminState.READY
    assert [p.name for p in lb.dir.iterdir() if "confluo" in p.name] == []
    adapter(lb, pool).maint("n1")
    assert routed(pool, lb)["n1"] == 0


def test_unknown_server_or_upstream_is_a_clear_error(pool: Pool, lb: Running) -> None:
    nginx_lb = adapter(lb, pool)
    with pytest.raises(LoadBalancerError, match=r"upstreams.conf: upstream confluence has no server 10.9.9.9:80 \("):
        nginx_lb.drain("10.9.9.9:80")
    other = NginxUpstream(LocalTransport("lb1"), lb.extra["upstream"], "missing")
    with pytest.raises(LoadBalancerError, match="there is no `upstream missing` block"):
        other.state("n1")
    line = nginx_lb.describe("n1", AdminState.DRAIN)
    assert line.startswith(f"add `down` to `server {pool['n1'].address}` in upstream confluence of")


TRICKY = """\
# server 10.0.0.1:8090;  in a comment, not a server
upstream other { server 10.0.0.1:8090; }
upstream confluence {
    ip_hash;
    server 10.0.0.1:8090 weight=5 max_fails=3 fail_timeout=30s;  # node1
    server 10.0.0.2:8090
           max_fails=2;
    server "10.0.0.3:8090" down;
    # server 10.0.0.4:8090;
}
"""


def test_parsing_keeps_comments_other_upstreams_and_parameters() -> None:
    assert [(s.address, s.down is not None) for s in servers_of(TRICKY, "confluence") or []] == [
        ("10.0.0.1:8090", False),
        ("10.0.0.2:8090", False),
        ("10.0.0.3:8090", True),
    ]
    down = with_down(TRICKY, "confluence", "10.0.0.1:8090", True)
    assert "upstream other { server 10.0.0.1:8090; }" in down
    assert "server 10.0.0.1:8090 weight=5 max_fails=3 fail_timeout=30s down;  # node1" in down
    assert with_down(down, "confluence", "10.0.0.1:8090", False) == TRICKY
    multi_line = with_down(TRICKY, "confluence", "10.0.0.2:8090", True)
    assert "           max_fails=2 down;" in multi_line
    assert with_down(TRICKY, "confluence", "10.0.0.3:8090", False).count("down") == 0
    assert with_down(TRICKY, "confluence", "10.0.0.3:8090", True) == TRICKY
    with pytest.raises(LoadBalancerError, match=r"has no server 10\.0\.0\.4:8090"):
        with_down(TRICKY, "confluence", "10.0.0.4:8090", True)
    twice = TRICKY.replace("upstream confluence {", "upstream confluence {\n    server 10.0.0.2:8090;")
    with pytest.raises(LoadBalancerError, match=r"has 2 lines for server 10\.0\.0\.2:8090"):
        with_down(twice, "confluence", "10.0.0.2:8090", True)


def test_a_new_server_is_added_out_of_the_pool_as_its_donor_is_set_up_and_then_takes_requests(
    pool: Pool, lb: Running
) -> None:
    upstream = Path(lb.extra["upstream"])
    without_n3 = "".join(line for line in upstream.read_text().splitlines(True) if "# n3" not in line)
    upstream.write_text(without_n3)
    nginx_lb = adapter(lb, pool)
    subprocess.run(nginx_argv(lb.extra["binary"], lb.dir, Path(lb.extra["main"]), "-s", "reload"), check=True)
    with pytest.raises(LoadBalancerError, match="has no server"):
        nginx_lb.state("n3")

    nginx_lb.add_server("n3", like="n1")
    assert nginx_lb.state("n3").admin is AdminState.MAINT and routed(pool, lb)["n3"] == 0
    added = [line for line in upstream.read_text().splitlines() if line not in without_n3.splitlines()]
    assert added == [f"    server {pool['n3'].address} weight=1 max_fails=0 down;  # n3, added by confluo add-node"]
    nginx_lb.add_server("n3", like="n1")  # there already: nothing changes
    assert upstream.read_text().count(pool["n3"].address) == 1
    nginx_lb.ready("n3")
    assert routed(pool, lb)["n3"] > 0
    assert nginx_lb.describe_add("n3", "n1").startswith(f"add `server {pool['n3'].address} … down;` (the parameters")


def test_a_server_line_is_written_as_its_model_with_down_and_nowhere_else() -> None:
    added = with_server(TRICKY, "confluence", "10.0.0.9:8090", "10.0.0.2:8090", "node9")
    assert added.replace("\n    server 10.0.0.9:8090 max_fails=2 down;  # node9", "", 1) == TRICKY
    assert added.index("10.0.0.9") > added.index('"10.0.0.3:8090" down;')  # after the upstream's last server
    assert "10.0.0.9" not in added.split("upstream confluence")[0]
    from_down = with_server(TRICKY, "confluence", "10.0.0.9:8090", "10.0.0.3:8090", "node9")
    assert "server 10.0.0.9:8090 down;  # node9" in from_down  # `down` once
    assert with_server(TRICKY, "confluence", "10.0.0.3:8090", "10.0.0.1:8090", "again") == TRICKY
    with pytest.raises(LoadBalancerError, match=r"has no server 10\.0\.0\.4:8090"):
        with_server(TRICKY, "confluence", "10.0.0.9:8090", "10.0.0.4:8090", "node9")


def test_an_upstream_whose_sessions_are_not_sticky_is_warned_about(pool: Pool, lb: Running) -> None:
    assert directives_of(TRICKY, "confluence")[0] == ["ip_hash"]
    assert directives_of(TRICKY, "other") == [["server", "10.0.0.1:8090"]]
    (warning,) = adapter(lb, pool).warnings()  # the test's upstream spreads fresh clients: no hash
    assert "upstream confluence has no `hash $cookie_JSESSIONID` or `ip_hash`: Confluence needs sticky" in warning
    upstream = Path(lb.extra["upstream"])
    upstream.write_text(
        upstream.read_text().replace(
            "upstream confluence {", "upstream confluence {\n    hash $cookie_JSESSIONID consistent;"
        )
    )
    assert adapter(lb, pool).warnings() == ()
