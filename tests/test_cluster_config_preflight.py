"""What each node's own files say about the cluster, read by the real probe before anything is changed: a node that
regenerates its confluence.cfg.xml at every start is refused, multicast discovery and peers that miss a node are
warned about. Fakes: local hosts with real files, the probe run as on a node."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fakes import SOURCE, FakeSite

from confluo.cli.env import Env
from confluo.cli.main import cli
from confluo.errors import ExitCode
from confluo.identity import forces_cfg_update, peers_of
from confluo.plan.rules import MULTICAST


def confluo(site: FakeSite, *args: str) -> tuple[int, str, str]:
    env = Env(stdin_isatty=False, stdout_isatty=False, ports=site.ports())
    result = CliRunner().invoke(cli, [*args, "-i", str(site.inventory)], obj=env)
    return result.exit_code, result.stdout, result.stderr


def cfg_xml(join: str, peers: str | None = None) -> str:
    peer_line = f'    <property name="confluence.cluster.peers">{peers}</property>\n' if peers is not None else ""
    return (
        "<confluence-configuration>\n  <properties>\n"
        f'    <property name="confluence.cluster.join.type">{join}</property>\n{peer_line}'
        "  </properties>\n</confluence-configuration>\n"
    )


@pytest.mark.parametrize(
    ("text", "forced"),
    [
        ("export ATL_FORCE_CFG_UPDATE=true\n", True),
        ('CATALINA_OPTS="-Xmx2g"\nATL_FORCE_CFG_UPDATE="TRUE"; export ATL_FORCE_CFG_UPDATE\n', True),
        ('[Service]\nEnvironment="ATL_FORCE_CFG_UPDATE=true"\n', True),
        ("# export ATL_FORCE_CFG_UPDATE=true\n", False),
        ("export ATL_FORCE_CFG_UPDATE=false\n", False),
        ("export MY_ATL_FORCE_CFG_UPDATE=true\n", False),
        ("", False),
    ],
)
def test_a_forced_configuration_update_is_read_from_active_lines_only(text: str, forced: bool) -> None:
    assert forces_cfg_update(text) is forced


def test_peers_are_read_as_tcp_ip_discovery_lists_them() -> None:
    assert peers_of(cfg_xml("tcp_ip", " 10.0.0.1, 10.0.0.2 ,,")) == ("10.0.0.1", "10.0.0.2")
    assert peers_of(cfg_xml("multicast")) == ()


def test_a_node_that_regenerates_its_configuration_at_each_start_is_refused_before_any_change(site: FakeSite) -> None:
    setenv = site.hosts[1].base / SOURCE / "bin" / "setenv.sh"
    setenv.parent.mkdir(exist_ok=True)
    setenv.write_text("# ATL_FORCE_CFG_UPDATE=true was for Kubernetes\nexport ATL_FORCE_CFG_UPDATE=true\n")
    before = site.snapshot()
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.REFUSED, err
    assert "node2: ATL_FORCE_CFG_UPDATE=true in bin/setenv.sh" in err and "finalizedBuildNumber" in err
    assert "node1:" not in err and "node3:" not in err
    assert site.api.calls == [] and site.snapshot() == before


def test_multicast_and_peers_that_miss_a_node_are_warned_about_in_the_plan(site: FakeSite) -> None:
    addresses = [host.url.split("//")[1].split(":")[0] for host in site.hosts]
    (site.hosts[0].home / "confluence.cfg.xml").write_text(cfg_xml("tcp_ip", ",".join(addresses[:2])))
    (site.hosts[1].home / "confluence.cfg.xml").write_text(cfg_xml("tcp_ip", ",".join(addresses)))
    code, out, err = confluo(site, "plan")
    assert code == 0, err
    listed = ", ".join(addresses[:2])
    assert f"node1's confluence.cluster.peers ({listed}) does not list node3 ({addresses[2]}): add it there" in out
    assert "node2's confluence.cluster.peers" not in out and "discovery is multicast" not in out
    (site.hosts[2].home / "confluence.cfg.xml").write_text(cfg_xml("multicast"))
    code, out, _ = confluo(site, "plan")
    assert code == 0 and MULTICAST.split(":")[0] in out
