"""What a node shows besides its REST APIs: the dashboard, the setup wizard, and "not serving"."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape as xml_escape

from .routing import Reply, Request, error_reply, html_reply
from .states import ERROR, FIRST_RUN


def home_page(request: Request, _match: re.Match[str]) -> Reply:
    node = request.node
    return html_reply(
        f"<!DOCTYPE html><html><head><title>Dashboard - Confluence</title></head><body>"
        f"<h1>Confluence {node.version}</h1><p>Served by node <b>{xml_escape(node.name)}</b> "
        f"({node.listen_address}, id {node.node_id})</p></body></html>"
    )


def unavailable(request: Request, _match: re.Match[str] | None = None) -> Reply:
    """A node that does not serve: the setup wizard on a first run, otherwise 503 (or 500 in ERROR)."""
    _code, state = request.node.status()
    if state == FIRST_RUN and not request.path.startswith("/rest/"):  # the setup wizard; no API yet
        return html_reply(
            f"<html><body><h1>Confluence setup</h1><p>{request.node.name}: set up needed</p></body></html>"
        )
    code = 500 if state == ERROR else 503
    return error_reply(code, f"Confluence is not serving: {state}")
