"""The release archive and the node-side provisioning of an installation, a home and a host."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from confluo.lab import node as node_package
from confluo.lab import provision
from confluo.lab.node.home import read_home
from confluo.lab.node.install import (
    INIT_PROPERTIES,
    POM_PROPERTIES,
    read_confluence_home,
    read_connector,
    read_install,
    read_node_name,
    read_webapp_version,
)
from confluo.lab.tarball import build_archive

from .conftest import VERSION

TOP = f"atlassian-confluence-{VERSION}"


def _members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {member.name: member for member in tar.getmembers()}


def _read(archive: Path, name: str) -> bytes:
    with tarfile.open(archive) as tar:
        handle = tar.extractfile(f"{TOP}/{name}")
        assert handle is not None
        return handle.read()


def test_archive_has_the_release_layout(archives: dict[str, Path]) -> None:
    archive = archives[VERSION]
    assert archive.name == f"atlassian-confluence-{VERSION}.tar.gz"
    members = _members(archive)
    assert {name.split("/")[0] for name in members} == {TOP}
    for name in (
        "README.txt",
        "bin/start-confluence.sh",
        "bin/stop-confluence.sh",
        "bin/setenv.sh",
        "bin/user.sh",
        "bin/catalina.sh",
        "conf/server.xml",
        str(INIT_PROPERTIES),
        "confluence/WEB-INF/classes/seraph-config.xml",
        "confluence/WEB-INF/lib/postgresql-42.7.3.jar",
        str(POM_PROPERTIES),
        "lib/confluence-node.pyz",
    ):
        assert members[f"{TOP}/{name}"].isfile(), name
    for directory in ("logs", "work", "temp"):
        assert members[f"{TOP}/{directory}"].isdir()
    assert not any("mysql-connector" in name for name in members)
    assert members[f"{TOP}/bin/start-confluence.sh"].mode & stat.S_IXUSR
    names = list(members)
    assert names == sorted(names)  # deterministic order


def test_archive_files_are_stock(archives: dict[str, Path]) -> None:
    archive = archives[VERSION]
    assert f"version={VERSION}" in _read(archive, str(POM_PROPERTIES)).decode().splitlines()
    server_xml = _read(archive, "conf/server.xml").decode()
    assert '<Connector port="8090"' in server_xml
    setenv = _read(archive, "bin/setenv.sh").decode()
    assert 'CATALINA_OPTS="-Xms1024m -Xmx1024m -XX:+UseG1GC ${CATALINA_OPTS}"' in setenv
    assert 'CONF_USER=""' in _read(archive, "bin/user.sh").decode()
    init_properties = _read(archive, str(INIT_PROPERTIES)).decode()
    assert "# confluence.home=" in init_properties
    assert not [line for line in init_properties.splitlines() if line.startswith("confluence.home")]
    with zipfile.ZipFile(io.BytesIO(_read(archive, "confluence/WEB-INF/lib/postgresql-42.7.3.jar"))) as jar:
        assert jar.testzip() is None and "META-INF/MANIFEST.MF" in jar.namelist()


def test_archive_carries_the_node_package_as_a_zipapp(archives: dict[str, Path]) -> None:
    pyz = _read(archives[VERSION], "lib/confluence-node.pyz")
    assert pyz.startswith(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(io.BytesIO(pyz)) as app:
        assert "__main__.py" in app.namelist()
        for module in Path(node_package.__file__).parent.glob("*.py"):
            assert app.read(f"confluence_node/{module.name}") == module.read_bytes(), module.name


def test_the_node_program_runs_on_a_bare_python3(archives: dict[str, Path], tmp_path: Path) -> None:
    """-I -S: no site-packages, no environment, no current directory: the standard library only."""
    pyz = tmp_path / "confluence-node.pyz"
    pyz.write_bytes(_read(archives[VERSION], "lib/confluence-node.pyz"))
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", str(pyz), "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "--install" in done.stdout


def test_archive_is_reproducible_and_padding_sets_its_size(tmp_path: Path, archives: dict[str, Path]) -> None:
    again = build_archive(VERSION, tmp_path)
    assert again.read_bytes() == archives[VERSION].read_bytes()
    padded = build_archive("9.2.20", tmp_path / "padded", size_mb=3)
    assert 3 * 2**20 <= padded.stat().st_size < 3 * 2**20 + 200_000
    assert _members(padded)["atlassian-confluence-9.2.20/lib/padding.bin"].size == 3 * 2**20


def test_install_release_strips_the_top_directory_and_refuses_to_overwrite(
    tmp_path: Path, archives: dict[str, Path]
) -> None:
    base = tmp_path / "opt/atlassian/confluence"
    install = provision.install_release(archives[VERSION], base, VERSION)
    assert install == base / VERSION
    assert read_webapp_version(install / POM_PROPERTIES) == VERSION
    assert (install / "logs").is_dir() and (install / "bin/start-confluence.sh").stat().st_mode & stat.S_IXUSR
    assert sorted(p.name for p in base.iterdir()) == [VERSION]  # no scratch directory left behind
    with pytest.raises(FileExistsError):
        provision.install_release(archives[VERSION], base, VERSION)


def test_point_current_switches_the_symlink(tmp_path: Path, archives: dict[str, Path]) -> None:
    base = tmp_path / "base"
    for version in (VERSION, "9.2.14"):
        provision.install_release(archives[version], base, version)
    provision.point_current(base, VERSION)
    provision.point_current(base, "9.2.14")
    assert (base / "current").readlink() == Path("9.2.14")
    with pytest.raises(FileNotFoundError):
        provision.point_current(base, "1.2.3")


def test_customize_install_applies_the_production_changes(tmp_path: Path, archives: dict[str, Path]) -> None:
    install = provision.install_release(archives[VERSION], tmp_path / "base", VERSION)
    home = tmp_path / "home"
    provision.customize_install(
        install, address="127.0.0.11", node_name="node1", conf_user="cl0n1", home=home, db_kind="mysql"
    )
    assert read_connector(install / "conf/server.xml") == ("127.0.0.11", 8090)
    assert read_node_name(install / "bin/setenv.sh") == "node1"
    assert 'CONF_USER="cl0n1"' in (install / "bin/user.sh").read_text()
    init_properties = (install / INIT_PROPERTIES).read_text()
    assert read_confluence_home(install / INIT_PROPERTIES) == home
    assert "# confluence.home=" in init_properties  # the stock comments are kept
    jar = install / "confluence/WEB-INF/lib/mysql-connector-j-8.3.0.jar"
    assert zipfile.is_zipfile(jar)
    assert (install / "bin/setenv.sh").stat().st_mode & stat.S_IXUSR
    with pytest.raises(ValueError, match="database kind"):
        provision.customize_install(install, address="a", node_name="n", conf_user="u", home=home, db_kind="db2")


def test_create_home_writes_a_cluster_configuration_and_keeps_the_node_id(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cluster: dict[str, Any] = {
        "cluster_name": "lab",
        "shared_home": tmp_path / "shared",
        "db_file": tmp_path / "db.sqlite",
    }
    provision.create_home(home, **cluster, db_kind="mysql", build_number=902013)
    info = read_home(home)
    assert info is not None and info.setup_complete and info.build_number == 902013
    assert info.jdbc_url.startswith("jdbc:mysql://") and info.shared_home == str(tmp_path / "shared")
    assert info.db_file == tmp_path / "db.sqlite" and info.finalized_build == 902013
    assert info.node_id is not None and len(info.node_id) == 8 and int(info.node_id, 16) >= 0
    assert (home / "logs").is_dir()
    provision.create_home(home, **cluster, db_kind="postgresql", build_number=902014)
    again = read_home(home)
    assert again is not None and again.node_id == info.node_id and again.jdbc_url.startswith("jdbc:postgresql:")


def test_host_marker_is_found_from_the_installation(tmp_path: Path, archives: dict[str, Path]) -> None:
    provision.write_host_marker(tmp_path, name="node1", address="127.0.0.11", http_port=8090)
    assert json.loads((tmp_path / "etc/lab-host.json").read_text()) == {
        "name": "node1",
        "address": "127.0.0.11",
        "http_port": 8090,
    }
    base = tmp_path / "opt/atlassian/confluence"
    provision.install_release(archives[VERSION], base, VERSION)
    provision.point_current(base, VERSION)
    info = read_install(base / "current")
    assert info.host is not None and info.host.address == "127.0.0.11"
    assert info.version == VERSION and info.home is None and info.node_name is None
