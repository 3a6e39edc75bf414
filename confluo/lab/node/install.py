"""Reading an installation directory the way Confluence does: server.xml, setenv.sh, the init properties,
the webapp's version, and the lab's host marker (which host the installation lives on)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .versions import build_number_for

NOT_CONFIGURED = "Not configured"  # what Confluence shows for a node without a configured name
SERVER_XML = Path("conf/server.xml")
SETENV_SH = Path("bin/setenv.sh")
INIT_PROPERTIES = Path("confluence/WEB-INF/classes/confluence-init.properties")
WEBAPP_LIB = Path("confluence/WEB-INF/lib")
POM_PROPERTIES = Path("confluence/META-INF/maven/com.atlassian.confluence/confluence-webapp/pom.properties")
HOST_MARKER = Path("etc/lab-host.json")


class ConfigError(Exception):
    """The installation cannot even be read (the node exits instead of serving)."""


def parse_xml(path: Path) -> ET.Element:
    try:
        # The files are the node's own configuration, written by its administrator: not untrusted input.
        return ET.parse(path).getroot()  # noqa: S314
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def read_connector(server_xml: Path) -> tuple[str | None, int]:
    """The HTTP Connector's ``address`` (None: Tomcat binds every address) and ``port``."""
    for connector in parse_xml(server_xml).iter("Connector"):
        if "AJP" in connector.get("protocol", "").upper():
            continue
        try:
            return connector.get("address"), int(connector.get("port", "8080"))
        except ValueError as exc:
            raise ConfigError(f"{server_xml}: bad Connector port: {exc}") from exc
    raise ConfigError(f"{server_xml} has no HTTP <Connector>")


def _uncommented_lines(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def read_node_name(setenv: Path) -> str | None:
    """The ``-Dconfluence.cluster.node.name=`` JVM option set in setenv.sh (the last one wins)."""
    names = [
        match[1] or match[2]
        for line in _uncommented_lines(setenv)
        for match in re.finditer(r"-Dconfluence\.cluster\.node\.name=(?:'([^']*)'|([^\s\"']+))", line)
    ]
    return names[-1] if names and names[-1] else None


def read_confluence_home(init_properties: Path) -> Path | None:
    """``confluence.home`` from confluence-init.properties: the last uncommented line, spaces allowed."""
    home: str | None = None
    for line in _uncommented_lines(init_properties):
        match = re.fullmatch(r"confluence\.home\s*[=:]\s*(.*)", line)
        if match:
            home = match[1].strip()
    return Path(home) if home else None


def read_webapp_version(pom_properties: Path) -> str | None:
    for line in _uncommented_lines(pom_properties):
        key, _, value = line.partition("=")
        if key.strip() == "version":
            return value.strip()
    return None


@dataclass(frozen=True)
class HostMarker:
    """What ``etc/lab-host.json`` says about the host a node runs on."""

    name: str
    address: str
    http_port: int


def find_host_marker(install: Path) -> HostMarker | None:
    """Walk up from the installation directory to the host's ``etc/lab-host.json``."""
    start = install.absolute()
    for directory in (start, *start.parents, *install.resolve().parents):
        marker = directory / HOST_MARKER
        if marker.is_file():
            try:
                data = json.loads(marker.read_text(encoding="utf-8"))
                return HostMarker(str(data["name"]), str(data["address"]), int(data["http_port"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"cannot read {marker}: {exc}") from exc
    return None


@dataclass(frozen=True)
class InstallInfo:
    """Everything a node reads from its installation directory."""

    path: Path
    version: str | None
    connector_address: str | None
    port: int
    node_name: str | None
    home: Path | None
    has_mysql_driver: bool
    host: HostMarker | None

    @property
    def shown_version(self) -> str:
        return self.version or "unknown"

    @property
    def build_number(self) -> int:
        return build_number_for(self.version) if self.version else 0

    @property
    def shown_name(self) -> str:
        """The name the cluster knows the node by."""
        return self.node_name or NOT_CONFIGURED

    @property
    def listen_address(self) -> str:
        # The lab checks the bind address itself; the node always listens where its host lives.
        if self.host:
            return self.host.address
        return self.connector_address or "0.0.0.0"  # noqa: S104 - Tomcat's default without `address`


def read_install(install: Path) -> InstallInfo:
    address, port = read_connector(install / SERVER_XML)
    return InstallInfo(
        path=install,
        version=read_webapp_version(install / POM_PROPERTIES),
        connector_address=address,
        port=port,
        node_name=read_node_name(install / SETENV_SH),
        home=read_confluence_home(install / INIT_PROPERTIES),
        has_mysql_driver=any((install / WEBAPP_LIB).glob("mysql-connector-*.jar")),
        host=find_host_marker(install),
    )
