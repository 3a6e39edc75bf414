"""The local home's ``confluence.cfg.xml``: reading it, and the node's own edits (node id, build numbers)."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from .install import parse_xml

CFG_XML = "confluence.cfg.xml"
SYNCHRONY_JAR = "synchrony-standalone.jar"
PACKAGED_SYNCHRONY_JAR = Path("confluence/WEB-INF/packages") / SYNCHRONY_JAR
NODE_ID_PROPERTY = "confluence.cluster.node.id"


@dataclass(frozen=True)
class HomeInfo:
    """What a node reads from ``<home>/confluence.cfg.xml``."""

    path: Path
    setup_complete: bool
    build_number: int
    jdbc_url: str
    shared_home: str
    db_file: Path | None
    node_id: str | None
    finalized_build: int | None

    @property
    def cfg(self) -> Path:
        return self.path / CFG_XML


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def read_home(home: Path) -> HomeInfo | None:
    """The local home's configuration, or None when the home has not been set up (a first run)."""
    cfg = home / CFG_XML
    if not cfg.is_file():
        return None
    root = parse_xml(cfg)
    props = {p.get("name", ""): (p.text or "").strip() for p in root.iter("property")}
    db_file = props.get("lab.database.file")
    return HomeInfo(
        path=home,
        setup_complete=(root.findtext("setupStep") or "").strip() == "complete",
        build_number=_int_or_none((root.findtext("buildNumber") or "").strip()) or 0,
        jdbc_url=props.get("hibernate.connection.url", ""),
        shared_home=props.get("confluence.cluster.home", ""),
        db_file=Path(db_file) if db_file else None,
        node_id=props.get(NODE_ID_PROPERTY) or None,
        finalized_build=_int_or_none(props.get("finalizedBuildNumber")),
    )


def _with_property(text: str, name: str, value: str) -> str:
    element = f'<property name="{xml_escape(name)}">{xml_escape(value)}</property>'
    pattern = re.compile(r'<property name="' + re.escape(xml_escape(name)) + r'">[^<]*</property>')
    if pattern.search(text):
        return pattern.sub(lambda _match: element, text)
    return text.replace("</properties>", f"  {element}\n  </properties>", 1)


def update_cfg_xml(
    cfg: Path,
    *,
    build_number: int | None = None,
    properties: dict[str, str] | None = None,
) -> None:
    """Edit confluence.cfg.xml in place (text edits keep the admin's layout), atomically."""
    text = cfg.read_text(encoding="utf-8")
    if build_number is not None:
        text = re.sub(r"<buildNumber>[^<]*</buildNumber>", f"<buildNumber>{build_number}</buildNumber>", text)
    for name, value in (properties or {}).items():
        text = _with_property(text, name, value)
    temporary = cfg.with_name(f".{cfg.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, cfg)


def ensure_node_id(home: HomeInfo) -> str:
    """The node id lives in the local home so that it survives a reinstall of the application."""
    if home.node_id:
        return home.node_id
    node_id = secrets.token_hex(4)
    update_cfg_xml(home.cfg, properties={NODE_ID_PROPERTY: node_id})
    return node_id


def place_synchrony_jar(install: Path, home: Path) -> bool:
    """As Confluence does at start: the synchrony-standalone.jar of its release into the local home (atomically,
    and only when it differs). False when the release ships none."""
    packaged = install / PACKAGED_SYNCHRONY_JAR
    if not packaged.is_file():
        return False
    data = packaged.read_bytes()
    target = home / SYNCHRONY_JAR
    if target.is_file() and target.read_bytes() == data:
        return True
    temporary = home / f".{SYNCHRONY_JAR}.{os.getpid()}.tmp"
    temporary.write_bytes(data)
    os.replace(temporary, target)
    return True
