"""The node probe: one round trip per node (a read-only bash script), and the pure parser of its output.

Nothing here changes a host: `confluo plan` runs exactly these probes for real.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from collections.abc import Sequence

from confluo import identity
from confluo.inventory import Node
from confluo.layout import CFG_XML, INIT_PROPERTIES, PID_FILE, POM_PROPERTIES, STOCK_DIR, WEBINF_LIB, NodePaths
from confluo.probe.facts import SERVICE_FILE_KEY, NodeFacts
from confluo.transport.base import CommandResult, TransportError, quote_argv
from confluo.transport.remote import AS_RUN_USER, Remote, privileged_commands

# Arguments: $1 install in use (a symlink or a directory), $2 new install, $3 local home, $4 staged archive
# (relative to the login user's home unless absolute), $5 the commands sudo must allow (empty: no sudo), $6 the service
# definition file (empty: none), $7 what the Confluence user must be allowed through `sudo -n -u` (empty: nothing),
# $8 that user, then the customization files (relative to the installation).
_PROBE_SCRIPT = r"""
current=$1; new=$2; home=$3; staged=$4; privileged=$5; service=$6; as_run_user=$7; run_as=$8; shift 8
case $staged in /*) ;; *) staged=$HOME/$staged ;; esac
echo "@@login_home"; printf '%s\n' "$HOME"
echo "@@login_user"; id -un
if [ -n "$service" ] && [ -f "$service" ]; then
  echo "@@file __SERVICE__"; base64 -w0 "$service"; echo
  # A plain installation is the one the service names: the first path in it that holds bin/start-confluence.sh.
  if [ ! -L "$current" ]; then
    for path in $(grep -oE '/[^"'"'"' =;:()]+' "$service"); do
      path=${path%/}; path=${path%/bin/start-confluence.sh}; path=${path%/bin}
      if [ -f "$path/bin/start-confluence.sh" ]; then current=$path; break; fi
    done
  fi
fi
old=$(readlink -f -- "$current" 2>/dev/null || true)
echo "@@old_install"; [ -d "$old" ] && printf '%s\n' "$old"
echo "@@installed_version"; sed -n 's/^version=//p' "$old/__POM__" 2>/dev/null
echo "@@new_version"; [ -d "$new" ] && sed -n 's/^version=//p' "$new/__POM__" 2>/dev/null
echo "@@new_exists"; [ -e "$new" ] && echo yes
echo "@@free_kb"; df -Pk "$(dirname -- "$new")" 2>/dev/null | awk 'NR==2 {print $4}'
echo "@@staging_free_kb"; df -Pk "$HOME" 2>/dev/null | awk 'NR==2 {print $4}'
echo "@@home_exists"; [ -d "$home" ] && echo yes
# Which cluster node this host is configured as: its node name, the node id its local home keeps, its Connectors.
echo "@@identity setenv"; grep -e 'cluster.node.name=' -e 'ATL_FORCE_CFG_UPDATE' -- "$old/bin/setenv.sh" 2>/dev/null \
  | base64 -w0; echo
echo "@@identity cfg"; grep -e 'confluence.cluster.node.' -e 'confluence.cluster.join.type' \
  -e 'confluence.cluster.peers' -- "$home/__CFG__" 2>/dev/null | base64 -w0; echo
echo "@@identity server"; base64 -w0 "$old/conf/server.xml" 2>/dev/null; echo
echo "@@drivers"; ls -1 "$old/__LIB__" 2>/dev/null | grep -E '^(mysql-connector-.*|ojdbc.*)\.jar$'
echo "@@releases"; ls -1 "$(dirname -- "$new")" 2>/dev/null
echo "@@pid"; pid=$(cat "$old/__PID__" 2>/dev/null); [ -n "$pid" ] && [ -d "/proc/$pid" ] && echo "$pid"
echo "@@staged_bytes"; [ -f "$staged" ] && wc -c < "$staged"
echo "@@sudo_denied"; for cmd in $privileged; do sudo -n -l "$cmd" >/dev/null 2>&1 || echo "$cmd"; done
if [ -n "$run_as" ] && [ "$run_as" != "$(id -un)" ]; then
  for cmd in $as_run_user; do sudo -n -l -u "$run_as" "$cmd" >/dev/null 2>&1 || echo "$cmd (as $run_as)"; done
fi
echo "@@file __INIT__"; base64 -w0 "$old/__INIT__" 2>/dev/null; echo
echo "@@present"; for rel in "$@"; do [ -f "$old/$rel" ] && printf '%s\n' "$rel"; done
# Content only where the login user may read it (the merge needs it); an unreadable file is reported.
for rel in "$@"; do [ -f "$old/$rel" ] && [ -r "$old/$rel" ] && { echo "@@file $rel"; base64 -w0 "$old/$rel"; echo; }
done
# The stock files of the release in use, kept when confluo extracted it: the three-way merge's base.
echo "@@has_stock"; [ -d "$old/__STOCK__" ] && echo yes
for rel in "$@"; do
  stock=$old/__STOCK__/$rel
  [ -f "$stock" ] && [ -r "$stock" ] && { echo "@@stock $rel"; base64 -w0 "$stock"; echo; }
done
echo "@@end"
"""

PROBE_SCRIPT = (
    _PROBE_SCRIPT.replace("__POM__", POM_PROPERTIES)
    .replace("__LIB__", WEBINF_LIB)
    .replace("__PID__", PID_FILE)
    .replace("__INIT__", INIT_PROPERTIES)
    .replace("__SERVICE__", SERVICE_FILE_KEY)
    .replace("__STOCK__", STOCK_DIR)
    .replace("__CFG__", CFG_XML)
)
_CONTENT_SECTIONS = ("file ", "stock ", "identity ")


def probe_command(node: Node, paths: NodePaths, customizations: Sequence[str]) -> str:
    """`paths` as from node_paths(node, version, login_home=""): the staged archive relative to $HOME."""
    in_use = paths.current_link or str(node.install.path)
    definition = node.service.definition
    args = [
        in_use,
        paths.new_install,
        str(node.home),
        paths.staged_archive,
        " ".join(privileged_commands(node)) if node.sudo else "",
        str(definition) if definition else "",
        " ".join(AS_RUN_USER),  # kill, for the hard stop of a node that ignores its stop
        node.run_as or "",
    ]
    return quote_argv(["bash", "-c", PROBE_SCRIPT, "confluo-probe", *args, *customizations])


def parse_probe(node: str, output: str) -> NodeFacts:
    sections = _sections(output)

    def one(name: str) -> str | None:
        lines = sections.get(name, [])
        return lines[0] if lines and lines[0] else None

    def number(name: str) -> int | None:
        value = one(name)
        return int(value) if value and value.strip().isdigit() else None

    free_kb, staging_kb = number("free_kb"), number("staging_free_kb")
    present = tuple(line for line in sections.get("present", []) if line)
    files, not_text = _contents(sections, "file ", present)
    stock, _ = _contents(sections, "stock ", present)
    configured, _ = _contents(sections, "identity ", ())
    return NodeFacts(
        node=node,
        login_home=one("login_home") or "",
        login_user=one("login_user"),
        old_install=one("old_install"),
        installed_version=one("installed_version"),
        new_install_version=one("new_version"),
        new_install_exists=one("new_exists") == "yes",
        free_mb=None if free_kb is None else free_kb // 1024,
        staging_free_mb=None if staging_kb is None else staging_kb // 1024,
        home_exists=one("home_exists") == "yes",
        drivers=tuple(line for line in sections.get("drivers", []) if line),
        releases=tuple(line for line in sections.get("releases", []) if line),
        pid=number("pid"),
        staged_bytes=number("staged_bytes"),
        sudo_denied=tuple(line for line in sections.get("sudo_denied", []) if line),
        present=present,
        files=files,
        not_text=not_text,
        has_stock=one("has_stock") == "yes",
        stock=stock,
        configured_names=tuple(dict.fromkeys(identity.node_names(configured.get("setenv", "")))),
        configured_id=identity.cfg_property(configured.get("cfg", ""), identity.NODE_ID_PROPERTIES[0]),
        bound_addresses=tuple(dict.fromkeys(identity.connector_addresses(configured.get("server", "")))),
        forces_cfg_update=_forcing(configured.get("setenv", ""), files.get(SERVICE_FILE_KEY, "")),
        join_type=identity.cfg_property(configured.get("cfg", ""), identity.JOIN_TYPE_PROPERTY),
        peers=identity.peers_of(configured.get("cfg", "")),
    )


def _forcing(setenv: str, service: str) -> str | None:
    """Where ATL_FORCE_CFG_UPDATE=true is set: bin/setenv.sh, or the service definition."""
    if identity.forces_cfg_update(setenv):
        return "bin/setenv.sh"
    return "the service definition" if identity.forces_cfg_update(service) else None


def _contents(
    sections: dict[str, list[str]], prefix: str, present: tuple[str, ...]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The text of each file the probe sent, and the files that are not UTF-8 text (a keystore, a file in
    Latin-1): merged as text, their bytes would not survive. Empty output is an empty file only for a
    customization file the probe found (the local-home file's section is there even when it is not)."""
    texts: dict[str, str] = {}
    not_text: list[str] = []
    for name, lines in sections.items():
        rel = name.removeprefix(prefix).strip()
        encoded = "".join(lines)
        if not name.startswith(prefix) or not (encoded or rel in present):
            continue
        try:
            texts[rel] = base64.b64decode(encoded).decode("utf-8")
        except UnicodeDecodeError:
            not_text.append(rel)
    return texts, tuple(not_text)


def contents_summarized(result: CommandResult) -> CommandResult:
    """The probe's result as the log keeps it: each file's path, size and sha256, never its content (even a
    clipped base64 prefix decodes to the start of a file, passwords and all)."""
    out: list[str] = []
    inside = False
    for line in result.stdout.splitlines():
        if inside and not line.startswith("@@"):
            try:
                data = base64.b64decode(line)
            except binascii.Error:
                data = line.encode()
            out.append(f"({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}: contents not logged)")
            continue
        inside = line.startswith("@@") and line[2:].startswith(_CONTENT_SECTIONS)
        out.append(line)
    return dataclasses.replace(result, stdout="\n".join(out) + "\n")


def _sections(output: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("@@"):
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def probe_node(remote: Remote, paths: NodePaths, customizations: Sequence[str]) -> NodeFacts:
    try:
        command = probe_command(remote.node, paths, customizations)
        result = remote.shell(command, timeout=60, check=False, shown=contents_summarized)
    except TransportError as exc:
        return NodeFacts(node=remote.node.name, error=f"unreachable: {exc.message}")
    if "@@end" not in result.stdout:
        # Only stderr: stdout carries file contents, which may hold secrets.
        detail = "\n".join(result.stderr.strip().splitlines()[-5:]) or "its output ended early"
        return NodeFacts(node=remote.node.name, error=f"probe failed (exit {result.exit_status}): {detail}")
    facts = parse_probe(remote.node.name, result.stdout)
    remote.login_user = facts.login_user
    return facts
