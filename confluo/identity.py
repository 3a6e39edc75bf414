"""Pure text changes that give a copied node its own identity: its name in setenv.sh, its Connector's address in
server.xml, its user in user.sh, and in its local home's confluence.cfg.xml no copied node id, its own name, its
own home's paths and, with TCP/IP discovery, its address among the peers. Every other byte is kept."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, unescape

from confluo import configfiles

NODE_NAME_OPTION = "-Dconfluence.cluster.node.name="
# A node id kept in the local home (the lab's node program keeps its own there): a copy would make two nodes one.
NODE_ID_PROPERTIES = ("confluence.cluster.node.id",)
NODE_NAME_PROPERTY = "confluence.cluster.node.name"
JOIN_TYPE_PROPERTY = "confluence.cluster.join.type"
PEERS_PROPERTY = "confluence.cluster.peers"
SHARED_HOME_PROPERTIES = ("confluence.cluster.home", "shared-home")
POOL_PROPERTIES = ("hibernate.c3p0.max_size", "hibernate.hikari.maximumPoolSize")

_NAME_VALUE = re.compile(r"(-Dconfluence\.cluster\.node\.name=)(\"[^\"]*\"|'[^']*'|[^\s\"']*)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_CONNECTOR = re.compile(r"<Connector\b[^>]*>")
_ADDRESS = re.compile(r"(\baddress\s*=\s*)(\"[^\"]*\"|'[^']*')")


def _active(line: str) -> bool:
    """Not a shell comment (setenv.sh, an init script, a systemd unit)."""
    return not line.lstrip().startswith("#")


def _active_lines(text: str) -> list[str]:
    return [line for line in configfiles.natural_lines(text) if _active(line)]


def node_names(setenv: str) -> list[str]:
    """Every -Dconfluence.cluster.node.name value on an active line."""
    return [match[2].strip("\"'") for line in _active_lines(setenv) for match in _NAME_VALUE.finditer(line)]


_FORCE_CFG_UPDATE = re.compile(r"(?<![\w.])ATL_FORCE_CFG_UPDATE\s*=\s*[\"']?true\b", re.IGNORECASE)


def forces_cfg_update(text: str) -> bool:
    """ATL_FORCE_CFG_UPDATE=true on an active line (`export …` in setenv.sh, `Environment=…` in a unit): the
    local home's confluence.cfg.xml is generated again at every start."""
    return any(_FORCE_CFG_UPDATE.search(line) for line in _active_lines(text))


def peers_of(cfg_xml: str) -> tuple[str, ...]:
    """confluence.cluster.peers: the addresses TCP/IP discovery asks, comma-separated."""
    peers = cfg_property(cfg_xml, PEERS_PROPERTY) or ""
    return tuple(peer.strip() for peer in peers.split(",") if peer.strip())


def with_node_name(setenv: str, name: str) -> str:
    """Every active -Dconfluence.cluster.node.name set to `name`; without one, a CATALINA_OPTS line naming it is
    added (before `export CATALINA_OPTS` where the file has one)."""
    lines = configfiles.natural_lines(setenv, keepends=True)
    found = False
    for index, line in enumerate(lines):
        if _active(line) and _NAME_VALUE.search(line):
            lines[index] = _NAME_VALUE.sub(lambda m: m[1] + name, line)
            found = True
    if found:
        return "".join(lines)
    added = f'CATALINA_OPTS="{NODE_NAME_OPTION}{name} ${{CATALINA_OPTS}}"\n'
    export = re.search(r"^export CATALINA_OPTS\b", setenv, flags=re.MULTILINE)
    if export:
        return setenv[: export.start()] + added + setenv[export.start() :]
    return setenv + ("" if not setenv or setenv.endswith("\n") else "\n") + added


def connector_addresses(server_xml: str) -> list[str]:
    """The `address` of every active Connector that names one."""
    masked = _COMMENT.sub(lambda m: " " * len(m[0]), server_xml)
    return [unescape(m[2][1:-1]) for tag in _CONNECTOR.finditer(masked) for m in _ADDRESS.finditer(tag[0])]


def with_connector_address(server_xml: str, old: set[str], new: str) -> str:
    """Each active Connector bound to one of `old` bound to `new` instead (one that binds every address, with no
    `address`, stays so); comments and every other attribute kept."""
    masked = _COMMENT.sub(lambda m: " " * len(m[0]), server_xml)
    out, last = [], 0
    for tag in _CONNECTOR.finditer(masked):
        for match in _ADDRESS.finditer(tag[0]):
            if unescape(match[2][1:-1]) in old:
                start, end = tag.start() + match.start(2), tag.start() + match.end(2)
                out += [server_xml[last:start], f'"{escape(new, {chr(34): "&quot;"})}"']
                last = end
    return "".join(out) + server_xml[last:]


def with_conf_user(user_sh: str, user: str) -> str:
    """CONF_USER in bin/user.sh (the user start-confluence.sh runs Confluence as)."""
    if re.search(r"^CONF_USER=", user_sh, flags=re.MULTILINE):
        return re.sub(r"^CONF_USER=.*$", lambda _m: f'CONF_USER="{user}"', user_sh, flags=re.MULTILINE)
    return user_sh + ("" if not user_sh or user_sh.endswith("\n") else "\n") + f'CONF_USER="{user}"\nexport CONF_USER\n'


def _property(name: str) -> re.Pattern[str]:
    return re.compile(r'<property\s+name="' + re.escape(escape(name)) + r'"\s*>([^<]*)</property>')


def cfg_property(cfg_xml: str, name: str) -> str | None:
    match = _property(name).search(_COMMENT.sub("", cfg_xml))
    return unescape(match[1]).strip() if match else None


def with_cfg_property(cfg_xml: str, name: str, value: str) -> str:
    """The property set (replaced where it is, else added at the end of <properties>)."""
    element = f'<property name="{escape(name)}">{escape(value)}</property>'
    pattern = _property(name)
    if pattern.search(cfg_xml):
        return pattern.sub(lambda _m: element, cfg_xml)
    indent = re.search(r"\n([ \t]*)<property\b", cfg_xml)
    pad = indent[1] if indent else "    "
    return re.sub(r"([ \t]*)</properties>", lambda m: f"{pad}{element}\n{m[0]}", cfg_xml, count=1)


def without_cfg_property(cfg_xml: str, name: str) -> str:
    """The property's line removed (the whole line, so no blank one is left)."""
    return re.sub(r'[ \t]*<property\s+name="' + re.escape(escape(name)) + r'"\s*>[^<]*</property>[ \t]*\r?\n?', "",
                  cfg_xml)  # fmt: skip


def with_peer(peers: str, address: str) -> str:
    """A comma-separated peers list with `address` in it (once)."""
    listed = [peer.strip() for peer in peers.split(",") if peer.strip()]
    return ",".join(listed if address in listed else [*listed, address])


def new_node_cfg(cfg_xml: str, *, name: str, address: str, donor_home: str, home: str) -> str:
    """The donor's confluence.cfg.xml as the new node's: no node id, its own name where the file names one, paths
    into its own home, and its address among the TCP/IP peers."""
    text = cfg_xml
    for key in NODE_ID_PROPERTIES:
        text = without_cfg_property(text, key)
    if cfg_property(text, NODE_NAME_PROPERTY) is not None:
        text = with_cfg_property(text, NODE_NAME_PROPERTY, name)
    if donor_home.rstrip("/") != home.rstrip("/"):
        text = configfiles.repoint(text, donor_home, home)
    peers = cfg_property(text, PEERS_PROPERTY)
    if cfg_property(text, JOIN_TYPE_PROPERTY) == "tcp_ip" and peers is not None:
        text = with_cfg_property(text, PEERS_PROPERTY, with_peer(peers, address))
    return text
