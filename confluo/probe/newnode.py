"""The add-node probes: the donor's local home and sizes, then the new host (reachable, empty where the node
goes, the shared home at the same path, room for the copies, sudo). Read-only, but for one marker file in the
shared home that a real run writes and removes when no file there can be compared."""

from __future__ import annotations

import base64
import binascii
import io
import posixpath
import secrets
import tarfile
from dataclasses import replace

from confluo.layout import CFG_XML, CLONE_MARKER, HOME_NOT_COPIED, RUNTIME_DIRS
from confluo.probe.facts import NodeFacts
from confluo.probe.newnode_facts import DonorFacts, Mount, NewHostFacts
from confluo.transport.base import TransportError, quote_argv
from confluo.transport.remote import RM, TAR, TEE, Remote, contents_not_logged, privileged_commands, root

# $1 home, $2 installation, $3 "yes" to read as root, $4 what the installation's copy leaves out, $5 the home's.
_DONOR_SCRIPT = r"""
home=$1; install=$2; sudo=$3
as_root() { if [ "$sudo" = yes ]; then sudo -n "$@"; else "$@"; fi; }
bytes() {  # what a tar of the folder holds; /dev/null as the archive: tar reads no file's content
  local dir=$1; shift; local ex=(); for d in "$@"; do ex+=("--exclude=./$d"); done
  as_root __TAR__ -cf /dev/null --totals --anchored "${ex[@]}" -C "$dir" . 2>&1 |
    sed -n 's/^Total bytes written: \([0-9]*\).*/\1/p'
}
echo "@@cfg"; as_root __TAR__ -cf - -C "$home" __CFG__ 2>/dev/null | base64 -w0; echo
echo "@@install_bytes"; bytes "$install" $4
echo "@@home_bytes"; bytes "$home" $5
echo "@@login_free_kb"; df -Pk "$HOME" 2>/dev/null | awk 'NR==2 {print $4}'
echo "@@end"
"""

# $1 the shared home, $2 "yes" to read as root.
_SHARED_SCRIPT = r"""
as_root() { if [ "$2" = yes ]; then sudo -n "$@"; else "$@"; fi; }
[ -d "$1" ] && echo "@@found" && as_root __TAR__ -cf - -C "$1" __CFG__ 2>/dev/null | tar -xOf - 2>/dev/null |
  sha256sum | cut -c1-64
"""

# $1 installation, $2 the `current` link (or ""), $3 home, $4 shared home, $5 marker (or ""), $6 node, $7 sudo
# list, $8 "yes" to read as root.
_NEW_HOST_SCRIPT = r"""
install=$1; link=$2; home=$3; shared=$4; marker=$5; node=$6; privileged=$7; sudo=$8
as_root() { if [ "$sudo" = yes ]; then sudo -n "$@"; else "$@"; fi; }
echo "@@login_home"; printf '%s\n' "$HOME"
echo "@@login_user"; id -un
entry() {  # nothing there, confluo's copy for this node (its marker, read as root), or something else
  if [ ! -e "$1" ] && [ ! -L "$1" ]; then return; fi
  if as_root __TAR__ -cf - -C "$1" __MARKER__ 2>/dev/null | tar -xOf - 2>/dev/null | grep -qx "node=$node"; then
    echo clone; else echo other; fi
}
echo "@@install"; entry "$install"
echo "@@link"; [ -n "$link" ] && { [ -e "$link" ] || [ -L "$link" ]; } && echo other
echo "@@home"
if [ -d "$home" ] && [ -r "$home" ] && [ -z "$(ls -A -- "$home" 2>/dev/null)" ]; then :; else entry "$home"; fi
mount() { local p=$1; while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname -- "$p"); done
  df -Pk -- "$p" 2>/dev/null | awk 'NR==2 {print $4, $6}'; }
echo "@@install_mount"; mount "$(dirname -- "$install")"
echo "@@home_mount"; mount "$(dirname -- "$home")"
echo "@@login_mount"; mount "$HOME"
echo "@@shared"; [ -d "$shared" ] && echo yes
echo "@@marker"; [ -n "$marker" ] && { [ -f "$shared/$marker" ] && echo seen || echo missing; }
echo "@@sudo_denied"; for cmd in $privileged; do sudo -n -l "$cmd" >/dev/null 2>&1 || echo "$cmd"; done
echo "@@end"
"""


def _script(text: str) -> str:
    return text.replace("__TAR__", TAR).replace("__CFG__", CFG_XML).replace("__MARKER__", CLONE_MARKER)


def _sections(output: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("@@"):
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None and line:
            current.append(line)
    return sections


def _first(sections: dict[str, list[str]], name: str) -> str | None:
    lines = sections.get(name) or []
    return lines[0].strip() if lines and lines[0].strip() else None


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def tar_member_text(encoded: str | None) -> str | None:
    """The one file in a base64 tar stream, as text (None: no stream, or not readable text)."""
    if not encoded:
        return None
    try:
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(encoded))) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            handle = tar.extractfile(member) if member else None
            return handle.read().decode("utf-8") if handle else None
    except (binascii.Error, tarfile.TarError, UnicodeDecodeError, EOFError):
        return None


def parse_donor(node: NodeFacts, output: str) -> DonorFacts:
    sections = _sections(output)
    if "end" not in sections:
        return DonorFacts(node, error="the donor's probe ended early")
    login_kb = _int(_first(sections, "login_free_kb"))
    return DonorFacts(
        node,
        cfg_xml=tar_member_text(_first(sections, "cfg")),
        install_bytes=_int(_first(sections, "install_bytes")),
        home_bytes=_int(_first(sections, "home_bytes")),
        login_free_mb=None if login_kb is None else login_kb // 1024,
    )


def _mount(text: str | None) -> Mount | None:
    free, _, where = (text or "").partition(" ")
    return Mount(int(free) // 1024, where) if free.isdigit() else None


def parse_new_host(output: str) -> NewHostFacts:
    sections = _sections(output)
    if "end" not in sections:
        return NewHostFacts(error="the probe ended early")
    marker = _first(sections, "marker")
    return NewHostFacts(
        login_user=_first(sections, "login_user"),
        login_home=_first(sections, "login_home") or "",
        install_entry=_first(sections, "install"),
        link_entry=_first(sections, "link"),
        home_entry=_first(sections, "home"),
        shared_found=_first(sections, "shared") == "yes",
        marker_seen=None if marker is None else marker == "seen",
        install_mount=_mount(_first(sections, "install_mount")),
        home_mount=_mount(_first(sections, "home_mount")),
        login_mount=_mount(_first(sections, "login_mount")),
        sudo_denied=tuple(sections.get("sudo_denied", [])),
    )


def probe_donor(remote: Remote, node: NodeFacts) -> DonorFacts:
    assert node.old_install is not None
    args = [
        str(remote.node.home), node.old_install, "yes" if remote.node.sudo else "",
        " ".join(RUNTIME_DIRS), " ".join(HOME_NOT_COPIED),
    ]  # fmt: skip
    line = quote_argv(["bash", "-c", _script(_DONOR_SCRIPT), "confluo-donor", *args])
    try:
        result = remote.shell(line, timeout=300, check=False, shown=contents_not_logged)
    except TransportError as exc:
        return DonorFacts(node, error=f"unreachable: {exc.message}")
    return parse_donor(node, result.stdout)


def shared_sha256(remote: Remote, shared: str) -> tuple[bool, str | None]:
    """(the folder is there, sha256 of its confluence.cfg.xml or None) as this host sees them."""
    sudo = "yes" if remote.node.sudo else ""
    line = quote_argv(["bash", "-c", _script(_SHARED_SCRIPT), "confluo-shared", shared, sudo])
    result = remote.shell(line, timeout=60, check=False)
    lines = result.stdout.split()
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of no bytes: no file
    digest = lines[1] if len(lines) > 1 and lines[1] != empty else None
    return bool(lines) and lines[0] == "@@found", digest


def probe_new_host(remote: Remote, install: str, link: str | None, shared: str, marker: str | None) -> NewHostFacts:
    node = remote.node
    privileged = " ".join(privileged_commands(node)) if node.sudo else ""
    sudo = "yes" if node.sudo else ""
    args = [install, link or "", str(node.home), shared, marker or "", node.name, privileged, sudo]
    line = quote_argv(["bash", "-c", _script(_NEW_HOST_SCRIPT), "confluo-new-host", *args])
    try:
        result = remote.shell(line, timeout=60, check=False)
        facts = parse_new_host(result.stdout)
        if facts.reachable:
            remote.login_user = facts.login_user
            found, digest = shared_sha256(remote, shared)
            facts = replace(facts, shared_found=facts.shared_found and found, shared_sha256=digest)
    except TransportError as exc:
        return NewHostFacts(error=f"unreachable: {exc.message}")
    return facts


def write_marker(remote: Remote, shared: str) -> str | None:
    """A file of confluo's in the shared home, written through the donor; its name, or None if it could not be."""
    name = f".confluo-add-node-{secrets.token_hex(6)}"
    path = posixpath.join(shared, name)
    line = root(TEE, path).line(remote.node)
    try:
        ok = remote.shell(line + " >/dev/null", stdin=name.encode(), check=False).ok
    except TransportError:
        return None
    return name if ok else None


def remove_marker(remote: Remote, shared: str, name: str) -> None:
    path = posixpath.join(shared, name)
    line = root(RM, "-f", "--", path).line(remote.node)
    try:
        remote.shell(line, check=False)
    except TransportError:
        return
