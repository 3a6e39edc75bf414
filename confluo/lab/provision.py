"""Node-side setup for the lab: install a release, customize it like a production node, create the home.

These are the steps an administrator (or Atlassian's installer) performs once per node. The lab's
orchestration runs them when it brings a cluster up; confluo's upgrade then has to repeat the
installation-specific part (customizations, driver, symlink) on its own, and the node program judges it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tarfile
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from confluo.lab.node.home import CFG_XML, NODE_ID_PROPERTY
from confluo.lab.node.install import HOST_MARKER, INIT_PROPERTIES, SERVER_XML, SETENV_SH, WEBAPP_LIB
from confluo.lab.tarball import driver_jar

MYSQL_DRIVER_JAR = "mysql-connector-j-8.3.0.jar"
DB_KINDS = ("postgresql", "mysql")
_JDBC_URLS = {
    "postgresql": "jdbc:postgresql://127.0.0.1:5432/confluence",
    "mysql": "jdbc:mysql://127.0.0.1:3306/confluence?sessionVariables=transaction_isolation='READ-COMMITTED'",
}
_JDBC_DRIVERS = {"postgresql": "org.postgresql.Driver", "mysql": "com.mysql.cj.jdbc.Driver"}
_DIALECTS = {
    "postgresql": "com.atlassian.confluence.impl.hibernate.dialect.PostgreSQLDialect",
    "mysql": "com.atlassian.confluence.impl.hibernate.dialect.MySQLDialect",
}


def _db_kind(kind: str) -> str:
    normalized = {"postgres": "postgresql"}.get(kind, kind)
    if normalized not in DB_KINDS:
        raise ValueError(f"unknown database kind {kind!r}; expected one of {', '.join(DB_KINDS)}")
    return normalized


# --- installation ---------------------------------------------------------------------------------------


def install_release(archive: Path, base: Path, version: str) -> Path:
    """Extract ``archive`` into ``base/<version>`` without its top directory; refuse an existing one."""
    target = base / version
    if target.exists() or target.is_symlink():
        raise FileExistsError(f"{target} already exists")
    base.mkdir(parents=True, exist_ok=True)
    # Extract next to the target, then rename: a half-extracted release never appears under its name.
    with tempfile.TemporaryDirectory(prefix=f".{version}-", dir=base) as scratch:
        with tarfile.open(archive) as tar:
            # Extraction filters came with Python 3.11.4; Debian 12's 3.11.2 lacks them (the archive is the lab's own).
            if hasattr(tarfile, "data_filter"):
                tar.extractall(scratch, filter="data")
            else:
                tar.extractall(scratch)  # noqa: S202
        tops = list(Path(scratch).iterdir())
        if len(tops) != 1 or not tops[0].is_dir():
            raise ValueError(f"{archive} should hold exactly one top directory, found {len(tops)} entries")
        os.rename(tops[0], target)
    target.chmod(0o755)
    return target


def point_current(base: Path, version: str) -> None:
    """Point ``base/current`` at ``<version>`` (a relative link, swapped atomically)."""
    if not (base / version).is_dir():
        raise FileNotFoundError(f"{base / version} is not an installation")
    temporary = base / f".current.{os.getpid()}.tmp"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(version)
    os.replace(temporary, base / "current")


# --- customizations of one installation -----------------------------------------------------------------


def _mask_comments(xml: str) -> str:
    """The text with XML comments blanked out (same length), so a search skips commented examples."""
    return re.sub(r"<!--.*?-->", lambda m: " " * len(m.group(0)), xml, flags=re.DOTALL)


def set_connector_address(server_xml: str, address: str) -> str:
    """Give the first live HTTP ``<Connector>`` an ``address`` attribute (replacing any existing one)."""
    for match in re.finditer(r"<Connector\b[^>]*>", _mask_comments(server_xml)):
        tag = server_xml[match.start() : match.end()]
        if "AJP" in tag.upper():
            continue
        without = re.sub(r'\s+address\s*=\s*("[^"]*"|\'[^\']*\')', "", tag)
        new_tag = re.sub(r"^<Connector\b", f"<Connector address={quoteattr(address)}", without)
        return server_xml[: match.start()] + new_tag + server_xml[match.end() :]
    raise ValueError("server.xml has no HTTP <Connector>")


def set_node_name(setenv_sh: str, node_name: str) -> str:
    """Add ``-Dconfluence.cluster.node.name=NAME`` to CATALINA_OPTS the way administrators do."""
    option = f"-Dconfluence.cluster.node.name={node_name}"
    lines = setenv_sh.splitlines(keepends=True)
    live = [
        i
        for i, text in enumerate(lines)
        if not text.lstrip().startswith("#") and "-Dconfluence.cluster.node.name=" in text
    ]
    if live:  # rename in place; commented examples stay as they are
        for i in live:
            lines[i] = re.sub(r"-Dconfluence\.cluster\.node\.name=[^\s\"']*", lambda _m: option, lines[i])
        return "".join(lines)
    line = f'CATALINA_OPTS="{option} ${{CATALINA_OPTS}}"\n'
    export = re.search(r"^export CATALINA_OPTS\b", setenv_sh, flags=re.MULTILINE)
    if export:  # before the export, so the exported value has it
        return setenv_sh[: export.start()] + line + "\n" + setenv_sh[export.start() :]
    return setenv_sh.rstrip("\n") + "\n" + line


def set_conf_user(user_sh: str, conf_user: str) -> str:
    line = f'CONF_USER="{conf_user}"'
    if re.search(r"^CONF_USER=", user_sh, flags=re.MULTILINE):
        return re.sub(r"^CONF_USER=.*$", line, user_sh, flags=re.MULTILINE)
    return user_sh.rstrip("\n") + f"\n{line}\nexport CONF_USER\n"


def set_confluence_home(init_properties: str, home: Path) -> str:
    """Name the home at the bottom of confluence-init.properties; comments stay, live lines are replaced."""
    kept = [line for line in init_properties.splitlines() if not re.match(r"\s*confluence\.home\s*[=:]", line)]
    return "\n".join(kept).rstrip("\n") + f"\nconfluence.home={home}\n"


# Secrets an administrator's files carry, planted in every lab node so that tests can prove confluo never shows,
# logs or stores one (they are not credentials of anything).
CROWD_APP_PASSWORD = "Crowd-app-s3cret-7Q"  # noqa: S105 - planted on purpose, protects nothing
KEYSTORE_PASSWORD = "Keystore-s3cret-9Z"  # noqa: S105
TRUSTSTORE_PASSWORD = "Truststore-s3cret-4K"  # noqa: S105
PLANTED_SECRETS = (CROWD_APP_PASSWORD, KEYSTORE_PASSWORD, TRUSTSTORE_PASSWORD)
PROXY_NAME = "confluence.lab.example"


def behind_https_proxy(server_xml: str) -> str:
    """What administrators do to the stock server.xml: the live Connector told it sits behind an HTTPS proxy,
    more threads, and the HTTPS template (left commented) filled in with a real keystore."""
    proxy = f' scheme="https" secure="true" proxyName="{PROXY_NAME}" proxyPort="443"'
    edited = re.sub(
        r'(<Connector\b[^>]*?protocol="org\.apache\.coyote\.http11\.Http11NioProtocol")(/>)',
        lambda m: m[1] + proxy + m[2],
        server_xml,
        count=1,
    )
    edited = edited.replace('maxThreads="48"', 'maxThreads="100"', 1)
    edited = edited.replace('keystoreFile="/path/to/keystore"', 'keystoreFile="/etc/confluence/keystore.p12"')
    return edited.replace('keystorePass="<MY_CERTIFICATE_PASSWORD>"', f'keystorePass="{KEYSTORE_PASSWORD}"')


def tuned_setenv(setenv_sh: str) -> str:
    """A bigger heap and a truststore password, in the section the file says to change."""
    edited = setenv_sh.replace("-Xms1024m -Xmx1024m", "-Xms2048m -Xmx2048m", 1)
    trust = f'CATALINA_OPTS="-Djavax.net.ssl.trustStorePassword={TRUSTSTORE_PASSWORD} ${{CATALINA_OPTS}}"\n'
    return re.sub(r"^(CATALINA_OPTS=\"-Xms[^\n]*\n)", lambda m: m[1] + trust, edited, count=1, flags=re.M)


def crowd_sso(seraph_config: str) -> str:
    """Crowd SSO as the file's comment says: the default authenticator commented out, Crowd's enabled."""
    default = '<authenticator class="com.atlassian.confluence.user.ConfluenceAuthenticator"/>'
    crowd = '<authenticator class="com.atlassian.confluence.user.ConfluenceCrowdSSOAuthenticator"/>'
    return seraph_config.replace(default, f"<!-- {default} -->", 1).replace(f"<!-- {crowd} -->", crowd, 1)


def crowd_client(crowd_properties: str) -> str:
    """The application's real password and the Crowd server's URL, in Crowd's own key<blanks>value layout."""
    edited = re.sub(
        r"^(application\.password\s+)\S+", lambda m: m[1] + CROWD_APP_PASSWORD, crowd_properties, flags=re.M
    )
    return edited.replace("http://localhost:8095/", "https://crowd.lab.example/")


def _edit(path: Path, change: str) -> None:
    """Rewrite a text file, keeping its mode (scripts stay executable)."""
    mode = path.stat().st_mode & 0o7777
    path.write_text(change, encoding="utf-8")
    path.chmod(mode)


def mysql_driver_jar() -> bytes:
    return driver_jar("MySQL Connector/J", "8.3.0", "com.mysql.cj.jdbc.Driver")


def customize_install(
    install_dir: Path,
    *,
    address: str,
    node_name: str,
    conf_user: str,
    home: Path,
    db_kind: str,
) -> None:
    """Apply the per-node changes a production installation carries (and an upgrade must carry over)."""
    kind = _db_kind(db_kind)
    server_xml = install_dir / SERVER_XML
    _edit(server_xml, behind_https_proxy(set_connector_address(server_xml.read_text(encoding="utf-8"), address)))
    setenv = install_dir / SETENV_SH
    _edit(setenv, tuned_setenv(set_node_name(setenv.read_text(encoding="utf-8"), node_name)))
    classes = install_dir / "confluence" / "WEB-INF" / "classes"
    for name, change in (("seraph-config.xml", crowd_sso), ("crowd.properties", crowd_client)):
        if (classes / name).is_file():
            _edit(classes / name, change((classes / name).read_text(encoding="utf-8")))
    user_sh = install_dir / "bin" / "user.sh"
    _edit(user_sh, set_conf_user(user_sh.read_text(encoding="utf-8"), conf_user))
    init_properties = install_dir / INIT_PROPERTIES
    _edit(init_properties, set_confluence_home(init_properties.read_text(encoding="utf-8"), home))
    if kind == "mysql":
        (install_dir / WEBAPP_LIB / MYSQL_DRIVER_JAR).write_bytes(mysql_driver_jar())


# --- the local home and the host ------------------------------------------------------------------------


def _cfg_xml(properties: dict[str, str], build_number: int) -> str:
    lines = [f'    <property name="{xml_escape(k)}">{xml_escape(v)}</property>' for k, v in sorted(properties.items())]
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            "",
            "<confluence-configuration>",
            "  <setupStep>complete</setupStep>",
            "  <setupType>cluster</setupType>",
            f"  <buildNumber>{build_number}</buildNumber>",
            "  <properties>",
            *lines,
            "  </properties>",
            "</confluence-configuration>",
            "",
        ]
    )


def _existing_node_id(cfg: Path) -> str | None:
    if not cfg.is_file():
        return None
    match = re.search(
        r'<property name="' + re.escape(NODE_ID_PROPERTY) + r'">([^<]+)</property>', cfg.read_text(encoding="utf-8")
    )
    return match[1] if match else None


def create_home(
    home: Path,
    *,
    cluster_name: str,
    shared_home: Path,
    db_file: Path,
    db_kind: str,
    build_number: int,
    peers: str = "",
) -> None:
    """Create a set-up local home: confluence.cfg.xml of a cluster node, and logs/.

    A node id already in the home is kept: it identifies the node across reinstalls.
    """
    kind = _db_kind(db_kind)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    cfg = home / CFG_XML
    properties = {
        "access.mode": "READ_WRITE",
        "confluence.cluster": "true",
        "confluence.cluster.name": cluster_name,
        "confluence.cluster.home": str(shared_home),
        "confluence.cluster.join.type": "tcp_ip",
        "confluence.database.choice": kind,
        "finalizedBuildNumber": str(build_number),
        "hibernate.c3p0.max_size": "60",  # Confluence's default pool: one node's share of the database's connections
        "hibernate.connection.driver_class": _JDBC_DRIVERS[kind],
        "hibernate.connection.url": _JDBC_URLS[kind],
        "hibernate.connection.username": "confluence",
        "hibernate.dialect": _DIALECTS[kind],
        "lab.database.file": str(db_file),
        NODE_ID_PROPERTY: _existing_node_id(cfg) or secrets.token_hex(4),
    }
    if peers:
        properties["confluence.cluster.peers"] = peers  # TCP/IP discovery lists every node
    cfg.write_text(_cfg_xml(properties, build_number), encoding="utf-8")


def write_host_marker(host_root: Path, *, name: str, address: str, http_port: int) -> None:
    """Tell the node program which host it runs on (``host_root/etc/lab-host.json``)."""
    marker = host_root / HOST_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(
        json.dumps({"name": name, "address": address, "http_port": http_port}, indent=2) + "\n", encoding="utf-8"
    )
    marker.chmod(0o644)
