"""Checks a merged file must pass before it is written: it parses, and the node's own settings survive."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

# A node names itself in setenv.sh (Atlassian's setup); the active lines only.
_NODE_NAME = re.compile(r"^[^#\n]*-Dconfluence\.cluster\.node\.name=[\"']?([^\s\"']+)", re.MULTILINE)


def problems(rel: str, mine: str | None, result: str) -> list[str]:
    """What is wrong with `result` as the new installation's `rel`, judged against the file it replaces."""
    found: list[str] = []
    if rel.endswith(".xml"):
        try:
            # The node's own configuration files, written by its administrator: not untrusted input.
            ET.fromstring(result)  # noqa: S314
        except ET.ParseError as error:
            return [f"the result is not well-formed XML: {error}"]
    if mine is None:
        return found
    if rel == "conf/server.xml":
        lost = sorted(connectors(mine) - connectors(result))
        found += [f"the result loses the Connector on {_where(port, address)}" for port, address in lost]
    if rel == "bin/setenv.sh":
        found += [
            f"the result loses the node's name (-Dconfluence.cluster.node.name={name})"
            for name in sorted(set(_NODE_NAME.findall(mine)) - set(_NODE_NAME.findall(result)))
        ]
    return found


def connectors(server_xml: str) -> set[tuple[str, str | None]]:
    """(port, address) of every active Connector; empty when the file does not parse."""
    try:
        root = ET.fromstring(server_xml)  # noqa: S314
    except ET.ParseError:
        return set()
    return {(c.get("port", ""), c.get("address")) for c in root.iter("Connector")}


def _where(port: str, address: str | None) -> str:
    return f"{address}:{port}" if address else f"port {port}"
