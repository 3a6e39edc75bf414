"""The lab's standalone Synchrony hosts (`confluo lab up --synchrony N`): each a folder with its own sshd and
login user, and a Synchrony home holding the installed release's synchrony-standalone.jar and the two scripts an
administrator runs, written after Atlassian's: start-synchrony.sh refuses while a synchrony.pid is there (even one
whose process is gone), stop-synchrony.sh sends SIGTERM, then SIGKILL after 5 s, and then leaves the pid file.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from confluo.lab import hosts, tarball
from confluo.lab.hosts import LabError
from confluo.lab.model import SYNCHRONY_PORT, Lab, SynchronyHost
from confluo.lab.node.synchrony import FAIL_UPGRADE
from confluo.lab.node_processes import as_lab_user

MARKER = "synchrony.core"  # on the command line of every Synchrony process, as on Atlassian's
START_SCRIPT, STOP_SCRIPT = "start-synchrony.sh", "stop-synchrony.sh"
FAULT_KINDS = (FAIL_UPGRADE, "crash", "ssh-down")

_PID_RUNNING = r"""
pid_running() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    local state
    state="$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ]
}
"""

_START = (
    r"""#!/bin/bash
# Starts the lab's standalone Synchrony in the background (-fg: in the foreground), as Atlassian's
# start-synchrony.sh does: its pid goes into synchrony.pid, and a synchrony.pid already there stops the start.
SYNCHRONY_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVER_IP=__ADDRESS__
SYNCHRONY_JAR_PATH="$SYNCHRONY_HOME/synchrony-standalone.jar"
SYNCHRONY_PID_FILE="$SYNCHRONY_HOME/synchrony.pid"
OPTIONAL_OVERRIDES=(-Dsynchrony.port=__PORT__ -Dlab.start.seconds=__START__ -Dlab.fault.file=__FAULT__)
"""
    + _PID_RUNNING
    + r"""
if [ -f "$SYNCHRONY_PID_FILE" ]; then
    PID="$(cat "$SYNCHRONY_PID_FILE" 2>/dev/null)"
    if pid_running "$PID"; then
        echo "Synchrony appears to run already, with PID $PID: not started." >&2
        exit 1
    fi
    echo "$SYNCHRONY_PID_FILE is there, but its process is gone: remove it, then start Synchrony again." >&2
    exit 1
fi
PYTHON="$(command -v python3 || echo /usr/bin/python3)"
ARGS=("$PYTHON" "$SYNCHRONY_JAR_PATH" "-Dsynchrony.bind=$SERVER_IP" "${OPTIONAL_OVERRIDES[@]}" synchrony.core sql)
if [ "$1" = "-fg" ]; then
    exec "${ARGS[@]}"
fi
mkdir -p "$SYNCHRONY_HOME/logs"
cd "$SYNCHRONY_HOME" || exit 1
nohup "${ARGS[@]}" >>"$SYNCHRONY_HOME/logs/atlassian-synchrony.log" 2>&1 </dev/null &
echo "$!" > "$SYNCHRONY_PID_FILE"
echo "Starting Synchrony with PID $!; in a moment http://$SERVER_IP:__PORT__/synchrony/heartbeat says OK"
"""
)

_STOP = (
    r"""#!/bin/bash
# Stops the lab's standalone Synchrony as Atlassian's stop-synchrony.sh does: SIGTERM to the pid in synchrony.pid,
# SIGKILL if it still runs 5 s later (and then, as there, synchrony.pid stays behind).
SYNCHRONY_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SYNCHRONY_PID_FILE="$SYNCHRONY_HOME/synchrony.pid"
"""
    + _PID_RUNNING
    + r"""
if [ ! -f "$SYNCHRONY_PID_FILE" ]; then
    echo "Unable to find $SYNCHRONY_PID_FILE: is Synchrony running?"
    exit 1
fi
PID="$(cat "$SYNCHRONY_PID_FILE" 2>/dev/null)"
if ! pid_running "$PID" || ! tr '\0' ' ' < "/proc/$PID/cmdline" 2>/dev/null | grep -q synchrony.core; then
    echo "No Synchrony process with PID ${PID:-?}: nothing stopped."
    exit 0
fi
kill -TERM "$PID"
for _ in $(seq 50); do
    if ! pid_running "$PID"; then
        rm -f "$SYNCHRONY_PID_FILE"
        echo "Synchrony (PID $PID) stopped."
        exit 0
    fi
    sleep 0.1
done
echo "Synchrony (PID $PID) did not stop in time: SIGKILL."
kill -KILL "$PID"
"""
)


def start_script(host: SynchronyHost, start_seconds: float) -> str:
    values = {
        "__ADDRESS__": shlex.quote(host.address),
        "__PORT__": str(SYNCHRONY_PORT),
        "__START__": f"{start_seconds:g}",
        "__FAULT__": shlex.quote(str(host.fault_file)),
    }
    text = _START
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def provision(lab: Lab, host: SynchronyHost) -> None:
    """The Synchrony home as an administrator sets it up: the jar from the installed release, the two scripts
    (root's, like the jar), the home itself the Synchrony user's (its pid file and logs go there)."""
    host.home.mkdir(parents=True)
    (host.host_root / "etc").mkdir(mode=0o755)
    host.jar.write_bytes(tarball.synchrony_jar(lab.version))
    host.jar.chmod(0o644)
    for name, text in ((START_SCRIPT, start_script(host, lab.timings.start_seconds)), (STOP_SCRIPT, _STOP)):
        (host.home / name).write_text(text)
        (host.home / name).chmod(0o755)
    (host.home / "logs").mkdir()
    if host.user is not None:
        os.chown(host.home, *_ids(host.user))
        os.chown(host.home / "logs", *_ids(host.user))
        hosts.prepare_sshd(host.sshd)


def _ids(user: str) -> tuple[int, int]:
    account = pwd.getpwnam(user)
    return account.pw_uid, account.pw_gid


def run_script(host: SynchronyHost, script: str) -> str:
    done = subprocess.run(
        as_lab_user(host.user, [str(host.home / script)]),
        cwd=host.home, capture_output=True, text=True, timeout=30, start_new_session=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise LabError(f"{host.home / script} failed on {host.name} ({done.returncode}): {done.stderr or done.stdout}")
    return done.stdout.strip()


def heartbeat(host: SynchronyHost) -> str:
    """OK, or what the heartbeat URL answered instead."""
    try:
        with urllib.request.urlopen(host.heartbeat_url, timeout=2) as response:  # noqa: S310 - lab http URLs
            body = response.read().decode(errors="replace").strip()
            return "OK" if body == "OK" else f"HTTP {response.status} {body[:20]!r}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except OSError:
        return "DOWN"


def wait_until_serving(hosts_: list[SynchronyHost], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (down := {h.name: seen for h in hosts_ if (seen := heartbeat(h)) != "OK"}) and time.monotonic() < deadline:
        time.sleep(0.1)
    if down:
        raise LabError(f"Synchrony did not come up: {down}; see logs/atlassian-synchrony.log in its home")


def pid(lab: Lab, host: SynchronyHost) -> int | None:
    """The live Synchrony process of this host (checked against its command line: pids get reused)."""
    found = hosts.read_pid(host.pid_file)
    return found if hosts.runs(found, MARKER) and hosts.runs(found, str(lab.dir / "hosts")) else None


def jar_version(jar: Path) -> str | None:
    """What the jar's manifest says (Implementation-Version), or None when it is not such a jar."""
    with contextlib.suppress(OSError, zipfile.BadZipFile, KeyError):
        with zipfile.ZipFile(jar) as archive:
            manifest = archive.read("META-INF/MANIFEST.MF").decode()
        for line in manifest.splitlines():
            if line.startswith("Implementation-Version:"):
                return line.split(":", 1)[1].strip()
    return None


def status(lab: Lab, host: SynchronyHost) -> dict[str, Any]:
    problems = []
    if host.fault_file.exists():
        problems.append(f"fault {json.loads(host.fault_file.read_text()).get('kind')}")
    if host.user is not None and host.sshd.pid() is None:
        problems.append("sshd is down")
    entry: dict[str, Any] = {
        "name": host.name,
        "address": host.address,
        "heartbeat_url": host.heartbeat_url,
        "heartbeat": heartbeat(host),
        "version": jar_version(host.jar),
        "home": str(host.home),
        "pid": pid(lab, host),
        "problems": problems,
    }
    if host.user is not None:
        entry["ssh"] = {"host": host.address, "port": hosts.SSH_PORT, "user": host.user}
    return entry


def fault(lab: Lab, host: SynchronyHost, kind: str) -> str:
    if kind == FAIL_UPGRADE:
        host.fault_file.write_text(json.dumps({"kind": kind, "keep": lab.version}) + "\n")
        host.fault_file.chmod(0o644)
        return f"{host.name}: fault {kind} set (only the jar of {lab.version} starts there)"
    if kind == "crash":
        running = pid(lab, host)
        if running is None:
            raise LabError(f"{host.name} has no running Synchrony to crash")
        os.kill(running, signal.SIGKILL)
        hosts.wait_until_gone([running], 2.0)
        return f"{host.name}: Synchrony {running} killed with SIGKILL (its synchrony.pid stays)"
    if kind == "ssh-down":
        if not lab.ssh:
            raise LabError(f"the lab at {lab.dir} runs in local mode: {host.name} has no sshd to stop")
        hosts.stop_sshd(host.sshd)
        return f"{host.name}: sshd stopped"
    raise LabError(f"unknown fault kind {kind!r} for a Synchrony host; choose one of {', '.join(FAULT_KINDS)}, clear")


def clear(lab: Lab, host: SynchronyHost) -> str:
    host.fault_file.unlink(missing_ok=True)
    if lab.ssh and host.sshd.pid() is None:
        hosts.start_sshd(host.sshd)
        return f"{host.name}: fault cleared, sshd started again"
    return f"{host.name}: fault cleared"


def stop_all(lab: Lab) -> None:
    """For `down`: every Synchrony process of the lab, by pid."""
    hosts.terminate([p for host in lab.synchrony if (p := pid(lab, host)) is not None], grace=1.0)
