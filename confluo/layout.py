"""Where things are on a node: pure functions from the inventory (and what a probe found) to paths."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from confluo.inventory import Node

POM_PROPERTIES = "confluence/META-INF/maven/com.atlassian.confluence/confluence-webapp/pom.properties"
INIT_PROPERTIES = "confluence/WEB-INF/classes/confluence-init.properties"
WEBINF_LIB = "confluence/WEB-INF/lib"
PID_FILE = "work/catalina.pid"
# Inside every installation confluo extracts: the release's stock customization files, the next upgrade's base.
STOCK_DIR = ".confluo/stock"
# Relative to the login user's home; per node, since homes are often one NFS share for every node.
STAGING_DIR = ".cache/confluo"
# Written by the run user at runtime, so they must belong to it in a new installation.
RUNTIME_DIRS = ("logs", "work", "temp")


def archive_name(version: str) -> str:
    return f"atlassian-confluence-{version}.tar.gz"


@dataclass(frozen=True)
class NodePaths:
    """The paths one node's upgrade works with."""

    current_link: str | None  # <base>/current in the symlink layout; None in the plain layout
    install_root: str  # where installations live side by side
    new_install: str
    staged_archive: str


SHARED_STAGING_DIR = "confluo"  # relative to the shared home


def node_paths(node: Node, version: str, login_home: str, shared_home: str | None = None) -> NodePaths:
    """With a shared home, every node reads the one copy of the archive confluo sent there."""
    if shared_home:
        staged = posixpath.join(shared_home, SHARED_STAGING_DIR, archive_name(version))
    else:
        staged = posixpath.join(login_home, STAGING_DIR, node.name, archive_name(version))
    if node.install.layout == "symlink":
        assert node.install.base is not None
        base = str(node.install.base)
        return NodePaths(posixpath.join(base, "current"), base, posixpath.join(base, version), staged)
    assert node.install.path is not None
    root = posixpath.dirname(str(node.install.path).rstrip("/"))
    return NodePaths(None, root, posixpath.join(root, f"atlassian-confluence-{version}"), staged)


# confluo add-node: what a running node writes and a new node rebuilds is not copied (the search index is
# recovered at start-up from the shared home's snapshot or another node; its journal position goes with it).
HOME_NOT_COPIED = (
    "index", "journal", "logs", "temp", "analytics-logs", "plugins-cache", "plugins-osgi-cache", "plugins-temp",
    "bundled-plugins", "webresource-temp", "thumbnails", "viewfile",
)  # fmt: skip
CLONE_MARKER = ".confluo-clone"  # in a tree confluo copied for a new node: `node=<name>`, so a re-run knows it
CFG_XML = "confluence.cfg.xml"
