"""The lab's pure parts, and the checks `up` makes before it starts anything (no processes needed)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from confluo.lab import balancer, balancer_configs, hosts, inventory_writer, lifecycle, model, slots
from confluo.lab.hosts import LabError

SERVERS = [balancer_configs.Server("node1", "127.0.0.11", 8090), balancer_configs.Server("node2", "127.0.0.12", 8090)]


def test_next_bugfix_version_increments_the_patch_number() -> None:
    assert model.next_bugfix("9.2.13") == "9.2.14"
    assert model.next_bugfix("7.19.0") == "7.19.1"


@pytest.mark.parametrize("bad", ["9.2", "9.2.x", "v9.2.13", ""])
def test_a_version_that_is_not_x_y_z_is_refused(bad: str) -> None:
    with pytest.raises(LabError, match=r"X\.Y\.Z"):
        model.parse_version(bad)


def test_addresses_follow_the_slot_and_node_number() -> None:
    assert model.node_address(0, 1) == "127.0.0.11"
    assert model.node_address(3, 2) == "127.0.3.12"
    assert model.lb_address(3) == "127.0.3.10"
    assert hosts.user_name(3, 2) == "cl3n2"


def test_sudoers_grants_exactly_the_upgrade_commands_by_absolute_path() -> None:
    text = hosts.sudoers_text(4, ["cl4n1", "cl4n2"], hosts.sudo_command_paths())
    assert "User_Alias CONFLUO_LAB_4_USERS = cl4n1, cl4n2" in text
    commands = text.split("CONFLUO_LAB_4_COMMANDS = ")[1].splitlines()[0].split(", ")
    assert commands == [f"/usr/bin/{c}" for c in hosts.SUDO_COMMANDS]
    assert "NOPASSWD: CONFLUO_LAB_4_COMMANDS" in text


def test_sshd_config_uses_absolute_paths_and_no_passwords(tmp_path: Path) -> None:
    sshd = hosts.Sshd(tmp_path / "sshd", "127.0.0.11", "cl0n1")
    text = hosts.sshd_config_text(sshd)
    assert "ListenAddress 127.0.0.11:22" in text
    assert f"HostKey {tmp_path}/sshd/ssh_host_ed25519_key" in text
    assert f"PidFile {tmp_path}/sshd/sshd.pid" in text
    for line in ("UsePAM no", "PasswordAuthentication no", "AllowUsers cl0n1", "PermitRootLogin no"):
        assert line in text


def test_haproxy_config_checks_status_for_running_and_keeps_sessions_on_their_node(tmp_path: Path) -> None:
    lb = balancer.Balancer("haproxy", tmp_path, "127.0.0.10", socket_gid=1234)
    text = balancer_configs.haproxy_config_text(lb.files, SERVERS)
    for line in (
        f"stats socket {tmp_path}/haproxy.sock mode 660 level admin gid 1234",
        f"server-state-file {tmp_path}/server-state",
        "load-server-state-from-file global",
        "option httpchk GET /status",
        "http-check expect string RUNNING",
        "cookie JSESSIONID prefix nocache",
        "bind 127.0.0.10:8080",
        "server node1 127.0.0.11:8090 cookie node1",
        "server node2 127.0.0.12:8090 cookie node2",
    ):
        assert line in text
    # As production runs it: a failed request is not sent to another server, so only a drain protects users.
    assert "redispatch" not in text and "retry-on" not in text
    forgiving = balancer_configs.haproxy_config_text(replace(lb, retries=True).files, SERVERS)
    assert "option redispatch 1" in forgiving
    assert "retry-on conn-failure empty-response response-timeout 503" in forgiving


def test_nginx_keeps_its_default_next_upstream_unless_asked_to_retry(tmp_path: Path) -> None:
    upstream = balancer_configs.nginx_upstream_text(SERVERS, frozenset({"node2"}))
    assert "hash $cookie_JSESSIONID consistent;" in upstream
    assert "server 127.0.0.11:8090 max_fails=1 fail_timeout=2s;" in upstream
    assert "server 127.0.0.12:8090 max_fails=1 fail_timeout=2s down;" in upstream
    lb = balancer.Balancer("nginx", tmp_path, "127.0.0.10")
    config = balancer_configs.nginx_config_text(lb.files)
    assert "proxy_next_upstream" not in config
    assert f"include {tmp_path}/upstream.conf;" in config
    forgiving = balancer_configs.nginx_config_text(replace(lb, retries=True).files)
    assert "proxy_next_upstream error timeout http_502 http_503 non_idempotent;" in forgiving


def test_apache_config_is_sticky_health_checked_and_has_a_loopback_manager(tmp_path: Path) -> None:
    lb = balancer.Balancer("apache", tmp_path, "127.0.0.10")
    text = balancer_configs.apache_config_text(lb.files, SERVERS, user="nobody", group="nogroup")
    assert 'BalancerMember "http://127.0.0.11:8090" route=node1 retry=1 hcmethod=GET hcuri=/status' in text
    assert "ProxySet stickysession=ROUTEID" in text
    assert "SetHandler balancer-manager" in text and "Require ip 127.0.0.0/8" in text
    assert lb.manager_url == "http://127.0.0.10:8080/balancer-manager"


def _lab(tmp_path: Path, lb: str, mode: str = "ssh") -> model.Lab:
    lab = model.Lab(dir=tmp_path, slot=5, mode=mode, version="9.2.13", db="mysql", lb=lb, timings=model.Timings(),
                    admin_password="pw", node_count=2)  # fmt: skip
    lab.next_archive.write_bytes(b"archive")
    lab.source_archive.write_bytes(b"the running release")  # the inventory names it as the merge's base
    return lab


@pytest.mark.parametrize("kind", ["haproxy", "nginx", "apache"])
def test_the_inventory_names_the_load_balancer_and_each_nodes_server_in_it(tmp_path: Path, kind: str) -> None:
    from confluo.inventory import load_inventory

    lab = _lab(tmp_path, kind, mode="local")
    document = inventory_writer.inventory_document(lab)
    section = document["load_balancer"]
    assert section["kind"] == kind and section["on_drain_timeout"] == "continue"
    servers = [node["lb_server"] for node in document["nodes"]]
    assert servers == (["127.0.5.11:8090", "127.0.5.12:8090"] if kind == "nginx" else ["node1", "node2"])
    if kind == "haproxy":
        assert section["socket"] == f"{tmp_path}/lb/haproxy.sock" and section["backend"] == "confluence"
    if kind == "nginx":
        assert section["upstream_file"] == f"{tmp_path}/lb/upstream.conf"
        assert (
            section["reload_command"].endswith("-s reload")
            and f"-c {tmp_path}/lb/nginx.conf" in section["reload_command"]
        )
    if kind == "apache":
        assert section["balancer_manager_url"] == "http://127.0.5.10:8080/balancer-manager"
    lab.password_file.write_text("pw\n")
    inventory_writer.write_inventory(lab)
    assert load_inventory(lab.inventory).load_balancer is not None


def test_show_servers_state_is_read_as_maint_drain_up_down() -> None:
    text = "\n".join(
        [
            "1",
            "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight ...",
            "3 confluence 1 node1 127.0.0.11 2 0 1 1 10 6 3 4 6 0 0 0 - 8090 - 0 0 - - 0",
            "3 confluence 2 node2 127.0.0.12 2 8 1 1 10 6 3 4 6 0 0 0 - 8090 - 0 0 - - 0",
            "3 confluence 3 node3 127.0.0.13 0 1 1 1 10 6 3 4 6 0 0 0 - 8090 - 0 0 - - 0",
            "3 confluence 4 node4 127.0.0.14 0 0 1 1 10 6 3 4 6 0 0 0 - 8090 - 0 0 - - 0",
        ]
    )
    assert balancer.parse_servers_state(text) == {"node1": "UP", "node2": "DRAIN", "node3": "MAINT", "node4": "DOWN"}


def test_slots_are_claimed_once_and_a_stale_one_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slots, "SLOTS_DIR", tmp_path / "slots")
    first, second = tmp_path / "a", tmp_path / "b"
    assert slots.claim_slot(first) == 0
    assert slots.claim_slot(second) == 1  # slot 0 is being claimed by a live process (this one)
    owner = tmp_path / "slots" / "0" / "owner.json"
    owner.write_text(json.dumps({"dir": str(first), "pid": 999_999_999}))  # its claimer is gone, no lab.json
    assert slots.claim_slot(tmp_path / "c") == 0


def test_a_slot_whose_lab_json_names_it_stays_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slots, "SLOTS_DIR", tmp_path / "slots")
    lab_dir = tmp_path / "a"
    lab_dir.mkdir()
    assert slots.claim_slot(lab_dir) == 0
    (tmp_path / "slots" / "0" / "owner.json").write_text(json.dumps({"dir": str(lab_dir), "pid": 999_999_999}))
    (lab_dir / "lab.json").write_text(json.dumps({"slot": 0}))
    assert slots.claim_slot(tmp_path / "b") == 1


@pytest.mark.skipif(not hosts.ssh_supported(), reason="ssh mode needs root and /usr/sbin/sshd")
def test_up_refuses_a_dir_the_node_users_cannot_reach(tmp_path: Path) -> None:
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    with pytest.raises(LabError, match="not traversable by others"):
        lifecycle.up(hidden / "lab", model.LabOptions())
    assert not (hidden / "lab").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (model.LabOptions(nodes=0), "--nodes"),
        (model.LabOptions(db="oracle"), "--db"),
        (model.LabOptions(lb="traefik"), "--lb"),
        (model.LabOptions(version="nine"), r"X\.Y\.Z"),
    ],
)
def test_up_refuses_bad_options_before_starting_anything(
    tmp_path: Path, options: model.LabOptions, message: str
) -> None:
    with pytest.raises(LabError, match=message):
        lifecycle.up(tmp_path / "lab", options)
    assert not (tmp_path / "lab").exists()


def test_local_mode_is_forced_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hosts.MODE_ENV, "local")
    assert not hosts.ssh_supported()
    assert lifecycle.choose_mode(model.LabOptions()) == "local"


def test_local_mode_inventory_has_local_transport_and_no_ssh(tmp_path: Path) -> None:
    lab = model.Lab(
        dir=tmp_path,
        slot=5,
        mode="local",
        version="9.2.13",
        db="postgresql",
        lb="none",
        timings=model.Timings(),
        admin_password="pw",
        node_count=2,
    )
    lab.next_archive.write_bytes(b"archive")
    lab.source_archive.write_bytes(b"the running release")
    document = inventory_writer.inventory_document(lab)
    assert document["customizations"]["base_archive"] == str(lab.source_archive)  # the merge's base
    assert document["cluster"]["api_url"] == "http://127.0.5.11:8090"  # no LB: node1
    assert document["database"] == "postgresql"
    assert "ssh" not in document["defaults"]
    node = document["nodes"][1]
    assert node["transport"] == "local"
    assert node["sudo"] is False
    assert "run_as" not in node
    assert node["host"] == "127.0.5.12"
    assert os.path.isabs(node["install"]["base"])
