"""Builds the lab's ``atlassian-confluence-VERSION.tar.gz``: a release laid out like Atlassian's.

The archive holds the files an upgrade tool touches (bin/*.sh, conf/server.xml, confluence-init.properties,
seraph-config.xml and crowd.properties, as each version ships them: see stock.py; the bundled JDBC driver,
pom.properties) and the node program that plays Confluence: the package
``confluo.lab.node`` as a zipapp, ``lib/confluence-node.pyz``, which the host's python3 runs as it is.
Without padding the archive is byte-for-byte reproducible; padding is pseudo-random (incompressible) so
that a large archive really costs what a real ~700 MB release costs to copy and verify.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import random
import tarfile
import zipapp
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confluo.lab import node as node_package
from confluo.lab import stock
from confluo.lab.node.versions import parse_version

MiB = 1024 * 1024
_MTIME = 1_704_067_200  # 2024-01-01: a fixed timestamp keeps the archive reproducible
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)
POSTGRESQL_JAR = "postgresql-42.7.3.jar"
NODE_PROGRAM = "lib/confluence-node.pyz"  # its name also tells the lab's node processes from others
NODE_PACKAGE = "confluence_node"  # the node package's name inside the zipapp
_PYZ_MAIN = f"import sys\n\nfrom {NODE_PACKAGE}.program import main\n\nsys.exit(main())\n"


def archive_name(version: str) -> str:
    return f"atlassian-confluence-{version}.tar.gz"


def sha256_of(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def make_zip(entries: dict[str, str]) -> bytes:
    """A zip of the given text entries, in their order and with a fixed time: reproducible."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in entries.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_TIME), text)
    return buffer.getvalue()


def make_jar(entries: dict[str, str]) -> bytes:
    """A small but real jar (zip) with a manifest and the given text entries; reproducible."""
    return make_zip({"META-INF/MANIFEST.MF": "Manifest-Version: 1.0\r\n\r\n", **entries})


def node_program_pyz() -> bytes:
    """The node package as a zipapp with a ``#!/usr/bin/env python3`` line.

    zipapp.create_archive over a folder would stamp the entries with file times and the current time, in
    directory order; the zip is written sorted with a fixed time instead, and zipapp makes it the application.
    """
    package = Path(node_package.__file__).parent
    modules = {f"{NODE_PACKAGE}/{path.name}": path.read_text() for path in sorted(package.glob("*.py"))}
    pyz = io.BytesIO()
    zipapp.create_archive(io.BytesIO(make_zip({"__main__.py": _PYZ_MAIN, **modules})), pyz, "/usr/bin/env python3")
    return pyz.getvalue()


SYNCHRONY_JAR = "confluence/WEB-INF/packages/synchrony-standalone.jar"  # where a release ships it


def synchrony_jar(version: str) -> bytes:
    """The release's synchrony-standalone.jar: a real zip that `python3` runs (node/synchrony.py) and whose
    manifest names its version; reproducible, and different for every version."""
    program = (Path(node_package.__file__).parent / "synchrony.py").read_text()
    main = f"import sys\n\nfrom synchrony_lab import main\n\nsys.exit(main(version={version!r}))\n"
    manifest = (
        "Manifest-Version: 1.0\r\nImplementation-Title: Synchrony (lab build)\r\n"
        f"Implementation-Version: {version}\r\nMain-Class: synchrony.core\r\n\r\n"
    )
    return make_zip({"META-INF/MANIFEST.MF": manifest, "__main__.py": main, "synchrony_lab.py": program})


def driver_jar(bundle: str, version: str, driver_class: str) -> bytes:
    """A JDBC driver jar as far as anyone looks into it: manifest, the java.sql.Driver service entry."""
    class_file = driver_class.replace(".", "/") + ".txt"
    return make_jar(
        {
            "META-INF/MANIFEST.MF": (
                f"Manifest-Version: 1.0\r\nBundle-Name: {bundle}\r\nBundle-Version: {version}\r\n\r\n"
            ),
            "META-INF/services/java.sql.Driver": f"{driver_class}\n",
            class_file: f"Placeholder for {bundle} (lab build).\n",
        }
    )


def postgresql_jar() -> bytes:
    return driver_jar("PostgreSQL JDBC Driver", "42.7.3", "org.postgresql.Driver")


# --- the files of a release -----------------------------------------------------------------------------

_README = """\
Atlassian Confluence {version} (lab build)
==========================================

A simulated Confluence Data Center release built by confluo's lab. It has the layout of the real
archive, but the application is lib/confluence-node.pyz, a small Python program that behaves like a
cluster node (/status, the rolling upgrade REST API under /rest/zdu, a few pages).

  bin/start-confluence.sh   start in the background (-fg: in the foreground)
  bin/stop-confluence.sh    stop gracefully (SIGTERM)
  bin/setenv.sh             JVM options, e.g. -Dconfluence.cluster.node.name=...
  bin/user.sh               CONF_USER, the account Confluence runs as
  conf/server.xml           the HTTP Connector (port, address)
  confluence/WEB-INF/classes/confluence-init.properties   where the local home is

Logs go to logs/catalina.out and <local home>/logs/atlassian-confluence.log.
"""

_USER_SH = """\
# The account that runs Confluence. When it is set, start-confluence.sh started by root switches to
# this account, and refuses to start when run by any other account.
CONF_USER=""
export CONF_USER
"""

_INIT_PROPERTIES = """\
# confluence-init.properties: tells Confluence where its home directory is.
#
# The home directory holds this node's configuration (confluence.cfg.xml), its logs and caches.
# Keep it outside the installation directory: an upgrade replaces the installation directory.
#
#---------------------------
# Windows
#---------------------------
#
# Write every backslash in the path as a forward slash, e.g. the folder
# d:\\confluence\\home
# is written as:
# d:/confluence/home
#
#---------------------------
# Linux and other Unix systems
#---------------------------
#
# - For example:
# confluence.home=/var/atlassian/application-data/confluence
#
# Give the real, absolute path. If a directory on the way is a symbolic link, name the directory the
# link points to, not the link itself.
#
#---------------------------
# Home directory
#---------------------------
#
# Remove the '#' in front of the line below and set your path:

# confluence.home=d:/confluence/home
"""

_POM_PROPERTIES = """\
#Generated by Maven
#Mon Jan 01 00:00:00 UTC 2024
version={version}
groupId=com.atlassian.confluence
artifactId=confluence-webapp
"""

# The scripts are POSIX-ish bash. They resolve the installation directory through symlinks (current ->
# <version>), so the pid file and logs always belong to the real installation.
_COMMON_SH = r"""
resolve_install_dir() {
    local script
    script="$(readlink -f "$0")"
    (cd "$(dirname "$script")/.." && pwd -P)
}
INSTALL_DIR="$(resolve_install_dir)"
PID_FILE="$INSTALL_DIR/work/catalina.pid"

# A pid is "running" when /proc has it and it is not a zombie; kill -0 would fail for another user's pid.
pid_running() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    local state
    state="$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ]
}
"""

_START_SH = (
    r"""#!/bin/bash
# Start Confluence (the lab's node program) in the background, like Tomcat's startup.sh:
# writes work/catalina.pid, returns at once, logs to logs/catalina.out. "-fg" runs in the foreground.
"""
    + _COMMON_SH
    + r"""
. "$INSTALL_DIR/bin/user.sh"

FOREGROUND=""
for arg in "$@"; do
    case "$arg" in
        -fg|run) FOREGROUND=1 ;;
        -h|--help) echo "Usage: start-confluence.sh [-fg]"; exit 0 ;;
    esac
done

ME="$(id -un)"
if [ -n "$CONF_USER" ] && [ "$ME" != "$CONF_USER" ]; then
    if [ "$(id -u)" = "0" ]; then
        echo "Starting Confluence as the dedicated user $CONF_USER"
        if command -v runuser >/dev/null 2>&1; then
            exec runuser -u "$CONF_USER" -- "$INSTALL_DIR/bin/start-confluence.sh" "$@"
        fi
        exec su -s /bin/bash "$CONF_USER" -c "$(printf '%q ' "$INSTALL_DIR/bin/start-confluence.sh" "$@")"
    fi
    echo "Confluence has been installed to run as $CONF_USER. Run this script as $CONF_USER, or as root" \
         "so that it can switch to $CONF_USER." >&2
    exit 1
fi

PYTHON="${CONFLUENCE_PYTHON:-}"
if [ -z "$PYTHON" ]; then
    for candidate in "$(command -v python3 2>/dev/null)" /usr/bin/python3 /usr/local/bin/python3; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] \
                && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            PYTHON="$candidate"
            break
        fi
    done
fi
if [ -z "$PYTHON" ]; then
    echo "Cannot start Confluence: no python3 (3.11 or later) found" >&2
    exit 1
fi

if [ -f "$PID_FILE" ]; then
    OLD_PID="$(cat "$PID_FILE" 2>/dev/null)"
    if pid_running "$OLD_PID"; then
        echo "Existing PID file found during start."
        echo "Tomcat appears to still be running with PID $OLD_PID. Start aborted."
        echo "If the following process is not a Tomcat process, remove the PID file and try again:"
        exit 1
    fi
    echo "Removing/clearing stale PID file."
    rm -f "$PID_FILE" 2>/dev/null || : > "$PID_FILE"
fi

mkdir -p "$INSTALL_DIR/logs" "$INSTALL_DIR/work" "$INSTALL_DIR/temp" 2>/dev/null
NODE=("$PYTHON" "$INSTALL_DIR/lib/confluence-node.pyz" --install "$INSTALL_DIR")
echo "Using CATALINA_BASE:   $INSTALL_DIR"
echo "Using CATALINA_HOME:   $INSTALL_DIR"
echo "Using CATALINA_TMPDIR: $INSTALL_DIR/temp"
echo "Using JRE_HOME:        $PYTHON"
echo "Using CATALINA_PID:    $PID_FILE"

if [ -n "$FOREGROUND" ]; then
    echo "$$" > "$PID_FILE"
    exec "${NODE[@]}"
fi

echo "To run Confluence in the foreground, start the server with start-confluence.sh -fg"
echo "Server startup logs are located in $INSTALL_DIR/logs/catalina.out"
cd "$INSTALL_DIR" || exit 1
# Every stream redirected: over SSH the command returns at once instead of holding the channel open.
nohup "${NODE[@]}" >>"$INSTALL_DIR/logs/catalina.out" 2>&1 </dev/null &
echo "$!" > "$PID_FILE"
echo "Tomcat started."
"""
)

_STOP_SH = (
    r"""#!/bin/bash
# Stop Confluence gracefully: SIGTERM to the pid in work/catalina.pid. Returns at once; the node
# finishes its running tasks, goes OFFLINE and removes the pid file itself.
"""
    + _COMMON_SH
    + r"""
if [ ! -f "$PID_FILE" ]; then
    echo "PID file $PID_FILE not found: Confluence is not running."
    exit 0
fi
PID="$(cat "$PID_FILE" 2>/dev/null)"
if ! pid_running "$PID"; then
    echo "No Confluence process with PID ${PID:-?}: removing the stale PID file."
    rm -f "$PID_FILE" 2>/dev/null
    exit 0
fi
echo "Using CATALINA_PID:    $PID_FILE"
if kill -TERM "$PID"; then
    echo "Stopping Confluence (PID $PID): graceful shutdown requested."
    exit 0
fi
echo "Cannot signal PID $PID: run this script as the user Confluence runs as, or as root." >&2
exit 1
"""
)

_CATALINA_SH = r"""#!/bin/bash
# A minimal catalina.sh for the lab build: start, run (foreground) and stop map to the Confluence scripts.
BIN="$(dirname "$(readlink -f "$0")")"
case "$1" in
    start) shift; exec "$BIN/start-confluence.sh" "$@" ;;
    run)   shift; exec "$BIN/start-confluence.sh" -fg "$@" ;;
    stop)  shift; exec "$BIN/stop-confluence.sh" "$@" ;;
    *)     echo "Usage: catalina.sh ( start | run | stop )"; exit 1 ;;
esac
"""


# --- writing the archive --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    path: str  # relative to the top directory; "" is the top directory itself
    data: bytes | None = None  # None: a directory
    mode: int = 0o644
    size: int = 0  # for streamed members (padding)


class _PseudoRandomStream(io.RawIOBase):
    """Incompressible bytes, produced chunk by chunk so a large archive never sits in memory."""

    def __init__(self, seed: str) -> None:
        self._random = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._random.randbytes(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _release_members(version: str) -> list[_Member]:
    def text(path: str, content: str, mode: int = 0o644) -> _Member:
        return _Member(path, content.encode(), mode)

    return [
        text("README.txt", _README.format(version=version)),
        text("bin/catalina.sh", _CATALINA_SH, 0o755),
        text("bin/setenv.sh", stock.setenv_sh(version), 0o755),
        text("bin/start-confluence.sh", _START_SH, 0o755),
        text("bin/stop-confluence.sh", _STOP_SH, 0o755),
        text("bin/user.sh", _USER_SH, 0o755),
        text("conf/server.xml", stock.server_xml(version)),
        text(
            "confluence/META-INF/maven/com.atlassian.confluence/confluence-webapp/pom.properties",
            _POM_PROPERTIES.format(version=version),
        ),
        text("confluence/WEB-INF/classes/confluence-init.properties", _INIT_PROPERTIES),
        text("confluence/WEB-INF/classes/seraph-config.xml", stock.SERAPH_CONFIG),
        text("confluence/WEB-INF/classes/crowd.properties", stock.CROWD_PROPERTIES),
        _Member(f"confluence/WEB-INF/lib/{POSTGRESQL_JAR}", postgresql_jar()),
        _Member(SYNCHRONY_JAR, synchrony_jar(version)),
        _Member(NODE_PROGRAM, node_program_pyz(), 0o755),
        _Member("logs"),
        _Member("temp"),
        _Member("work"),
    ]


def _with_directories(members: list[_Member]) -> list[_Member]:
    """Add every parent directory and sort, so members come in one deterministic order."""
    directories = {m.path for m in members if m.data is None and not m.size}
    for member in members:
        parts = member.path.split("/")[:-1]
        directories.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    files = [m for m in members if m.data is not None or m.size]
    everything = [_Member(d, None, 0o755) for d in directories | {""}] + files
    return sorted(everything, key=lambda m: m.path)


def _tar_info(top: str, member: _Member) -> tarfile.TarInfo:
    info = tarfile.TarInfo(f"{top}/{member.path}".rstrip("/"))
    info.mtime, info.uid, info.gid, info.uname, info.gname = _MTIME, 0, 0, "root", "root"
    if member.data is None and not member.size:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.mode, info.size = member.mode, member.size or len(member.data or b"")
    return info


def _write_members(tar: tarfile.TarFile, top: str, members: list[_Member], version: str) -> None:
    for member in members:
        info = _tar_info(top, member)
        if info.isdir():
            tar.addfile(info)
        elif member.data is not None:
            tar.addfile(info, io.BytesIO(member.data))
        else:
            tar.addfile(info, io.BufferedReader(_PseudoRandomStream(f"padding-{version}"), MiB))


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[io.BufferedWriter]:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            yield handle
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def build_archive(version: str, out_dir: Path, size_mb: int = 0) -> Path:
    """Write ``out_dir/atlassian-confluence-VERSION.tar.gz`` and return its path.

    With ``size_mb > 0`` the archive carries ``lib/padding.bin`` of that many MiB of incompressible bytes.
    """
    parse_version(version)  # refuse a name the node program could not run as
    out_dir.mkdir(parents=True, exist_ok=True)
    members = _release_members(version)
    if size_mb > 0:
        members.append(_Member("lib/padding.bin", None, 0o644, size=size_mb * MiB))
    top = f"atlassian-confluence-{version}"
    target = out_dir / archive_name(version)
    level = 1 if size_mb > 0 else 9  # padding does not compress: don't spend CPU trying hard
    with (
        _atomic_output(target) as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=level) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        _write_members(tar, top, _with_directories(members), version)
    return target
