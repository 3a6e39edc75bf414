"""The running node: adopts its start-up verdict, serves HTTP, heartbeats, follows its row in the cluster
database and the index journal, and stops gracefully on SIGTERM (TERMINATING for a while, then OFFLINE).
``main`` wires it up."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from .cluster_state import finalization_due, settle_finalization
from .clusterdb import fault_in, read_settings, transaction
from .home import HomeInfo, update_cfg_xml
from .http import NodeServer
from .install import ConfigError, InstallInfo, read_install
from .log import NodeLog
from .search_index import BATCH, DEFAULT_INDEX_SECONDS, INDEX_BROKEN, JOURNAL, SearchIndex, entries_after
from .startup import Verdict, start_up
from .states import ACTIVE, DRAINING, ERROR, FIRST_RUN, OFFLINE, RUNNING_FINALIZE, STARTING, TASKS_FAILED, TERMINATING

HEARTBEAT_SECONDS = 0.3
TICK_SECONDS = 0.1
SECONDS_PER_TASK = 0.1  # a graceful stop waits this long per running task
SLOW_STOP_FACTOR = 10
STOP_RECORD_ATTEMPTS = 10  # a busy or briefly unwritable database must not turn a fault into a normal stop

_STATUS = {  # node state -> what /status answers
    STARTING: (503, "STARTING"),
    ACTIVE: (200, "RUNNING"),
    RUNNING_FINALIZE: (200, "RUNNING"),
    TASKS_FAILED: (200, "RUNNING"),
    DRAINING: (200, "RUNNING"),
    TERMINATING: (503, "STOPPING"),
    OFFLINE: (503, "STOPPING"),
    ERROR: (500, "ERROR"),
    FIRST_RUN: (200, "FIRST_RUN"),
}
# From its stop on a node turns users away (503) while /status says STOPPING, as Tomcat does for its load
# balancer; requests already in flight finish.
_SERVING = {ACTIVE, RUNNING_FINALIZE, TASKS_FAILED, DRAINING}


class NodeProgram:
    """One node: reads the installation, joins the cluster (or refuses to), serves HTTP until SIGTERM."""

    def __init__(self, install: InstallInfo) -> None:
        self.install = install
        self.log = NodeLog(install.path)
        self.state = STARTING
        self.name = install.shown_name
        self.version = install.shown_version
        self.build_number = install.build_number
        self.node_id: str | None = None
        self.db_file: Path | None = None
        self.home: HomeInfo | None = None
        self._stop = threading.Event()
        self._hang_start = False
        self._ready_at = math.inf
        self._upgraded = False
        self._finalized_build: int | None = None
        self.search_index = SearchIndex()
        self._index_seconds = DEFAULT_INDEX_SECONDS
        self._index_looked = -math.inf  # monotonic time of the last look at the journal
        self._index_checked: float | None = None  # the same, as wall time, for the node's row
        self._position_recorded: int | None = None  # what <home>/journal/main_index says

    @property
    def listen_address(self) -> str:
        return self.install.listen_address

    @property
    def port(self) -> int:
        return self.install.port

    @property
    def serving(self) -> bool:
        return self.state in _SERVING

    def status(self) -> tuple[int, str]:
        return _STATUS.get(self.state, (503, "STARTING"))

    def adopt(self, verdict: Verdict) -> None:
        """Take over what the start-up found out."""
        self.state = verdict.state
        self.home, self.db_file, self.node_id = verdict.home, verdict.db_file, verdict.node_id
        self._hang_start = verdict.hang_start
        self._ready_at = time.monotonic() + verdict.start_seconds
        self._upgraded = verdict.upgraded
        self._finalized_build = verdict.home.finalized_build if verdict.home else None

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def run(self, server: NodeServer) -> int:
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http-nio", daemon=True
        ).start()
        self.log.write(
            "INFO",
            "catalina.Connector",
            f'Starting ProtocolHandler ["http-nio-{self.listen_address}-{self.install.port}"]',
        )
        next_heartbeat = 0.0
        stop_at: float | None = None
        while stop_at is None or time.monotonic() < stop_at:
            if stop_at is None and self._stop.is_set():
                stop_at = time.monotonic() + self._begin_stop()
            if self.db_file is not None:
                with contextlib.suppress(sqlite3.Error):  # a busy database must not kill the node
                    if time.monotonic() >= next_heartbeat:
                        self._heartbeat(self.db_file)
                        next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
                    self._tick(self.db_file)
                    self._follow_journal(self.db_file)
            if stop_at is None:
                self._stop.wait(TICK_SECONDS)  # wakes at once on SIGTERM
            else:
                time.sleep(max(0.0, min(TICK_SECONDS, stop_at - time.monotonic())))
        self._finish(server)
        return 0

    def _heartbeat(self, db_file: Path) -> None:
        with transaction(db_file, write=True) as conn:
            conn.execute(
                "UPDATE nodes SET heartbeat = ?, pid = ?, index_position = ?, index_checked = ? WHERE id = ?",
                (time.time(), os.getpid(), self.search_index.position, self._index_checked, self.node_id),
            )

    def _tick(self, db_file: Path) -> None:
        if self.state == STARTING and not self._hang_start and time.monotonic() >= self._ready_at:
            self._become_active(db_file)
        with transaction(db_file, write=False) as conn:  # one read per tick keeps idle nodes cheap
            due = finalization_due(conn, time.time())
            row = conn.execute("SELECT state, pid FROM nodes WHERE id = ?", (self.node_id,)).fetchone()
            settings = read_settings(conn)
        cluster_version = settings.get("version")
        self._index_seconds = _seconds(settings.get("index_seconds"), DEFAULT_INDEX_SECONDS)
        if due:
            settle_finalization(db_file, known_due=True)
            return  # the rows have just changed: look again at the next tick
        mine = row is not None and row["pid"] == os.getpid()  # never adopt a row another process owns
        previous, self.state = self.state, str(row["state"]) if mine else self.state
        if previous == RUNNING_FINALIZE and self.state == TASKS_FAILED:
            self.log.write("ERROR", "confluence.upgrade", "Finalization upgrade tasks failed")
        finalized = cluster_version == self.version
        if self.state == ACTIVE and finalized and self._finalized_build != self.build_number:
            self._record_finalized()

    def _follow_journal(self, db_file: Path) -> None:
        """Every index_seconds, this node's index takes the journal entries it has not seen yet; under the fault
        index-broken it looks but takes nothing."""
        now = time.monotonic()
        if now < self._index_looked + self._index_seconds:
            return
        self._index_looked = now
        with transaction(db_file, write=False) as conn:
            self._index_checked = time.time()
            if fault_in(conn, self.name) == INDEX_BROKEN:
                return
            while entries := entries_after(conn, self.search_index.position):
                self.search_index.take(entries)
                if len(entries) < BATCH:
                    break
        self._record_position()

    def _record_position(self) -> None:
        """As Confluence does: the last journal entry indexed, in <home>/journal/main_index (written when it moves;
        a node whose index falls behind leaves there what it had)."""
        position = self.search_index.position
        if self.home is None or position == self._position_recorded:
            return
        journal = self.home.path / "journal"
        with contextlib.suppress(OSError):
            journal.mkdir(exist_ok=True)
            (journal / f"{JOURNAL}.tmp").write_text(f"{position}\n")
            (journal / f"{JOURNAL}.tmp").replace(journal / JOURNAL)
            self._position_recorded = position

    def _become_active(self, db_file: Path) -> None:
        with transaction(db_file, write=True) as conn:
            conn.execute("UPDATE nodes SET state = ? WHERE id = ? AND state = ?", (ACTIVE, self.node_id, STARTING))
        if self._upgraded and self.home is not None:
            with contextlib.suppress(OSError):
                update_cfg_xml(self.home.cfg, build_number=self.build_number)
            self._upgraded = False
            upgrades = "atlassian.confluence.upgrade.AbstractUpgradeManager"
            self.log.write("INFO", upgrades, "initialUpgradeFinished Upgrade initial stage completed successfully")
            self.log.write("INFO", upgrades, "entireUpgradeFinished Upgrade completed successfully")
        self.log.write("INFO", "confluence.lifecycle", f"Confluence is ready to serve ({self.name}, {self.version})")

    def _record_finalized(self) -> None:
        """The cluster finalized this node's version: the home's finalizedBuildNumber follows."""
        self._finalized_build = self.build_number
        if self.home is None:
            return
        with contextlib.suppress(OSError):
            update_cfg_xml(self.home.cfg, properties={"finalizedBuildNumber": str(self.build_number)})
            self.log.write("INFO", "confluence.upgrade", f"Finalized build number is {self.build_number}")

    def _begin_stop(self) -> float:
        """Go TERMINATING; return how long the graceful stop takes."""
        self.log.write("INFO", "confluence.lifecycle", "Received SIGTERM: shutting down gracefully")
        if self.db_file is None or self.state == FIRST_RUN:
            self.state = TERMINATING
            return 0.0
        seconds, tasks, fault = 1.0, 0, None  # if the database cannot be reached: stop, with the default grace
        for attempt in range(STOP_RECORD_ATTEMPTS):
            try:
                seconds, tasks, fault = self._mark_terminating(self.db_file)
                break
            except sqlite3.Error as exc:
                self.log.write("WARN", "confluence.lifecycle", f"cannot record TERMINATING ({attempt + 1}): {exc}")
                time.sleep(0.2)
        self.state = TERMINATING  # after the row: /status never runs ahead of the cluster's view
        if fault == "hang-stop":
            self.log.write("WARN", "confluence.lifecycle", "fault injected: hang-stop; shutdown never ends")
            return math.inf
        if fault == "slow-stop":
            seconds *= SLOW_STOP_FACTOR
        return seconds + SECONDS_PER_TASK * tasks

    def _mark_terminating(self, db_file: Path) -> tuple[float, int, str | None]:
        """Record TERMINATING; return the stop timing, the running tasks and the node's fault."""
        with transaction(db_file, write=True) as conn:
            conn.execute("UPDATE nodes SET state = ? WHERE id = ?", (TERMINATING, self.node_id))
            row = conn.execute("SELECT tasks FROM nodes WHERE id = ?", (self.node_id,)).fetchone()
            fault = fault_in(conn, self.name)
            seconds = float(read_settings(conn).get("stop_seconds", "1"))
        return seconds, int(row["tasks"]) if row else 0, fault

    def _finish(self, server: NodeServer) -> None:
        if self.db_file is not None:
            with contextlib.suppress(sqlite3.Error), transaction(self.db_file, write=True) as conn:
                conn.execute(
                    "UPDATE nodes SET state = ?, heartbeat = ? WHERE id = ? AND pid = ?",
                    (OFFLINE, time.time(), self.node_id, os.getpid()),
                )
        server.shutdown()
        server.server_close()
        pid_file = self.install.path / "work" / "catalina.pid"
        with contextlib.suppress(OSError):
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
        self.log.write("INFO", "catalina.Connector", "Destroying ProtocolHandler; Confluence stopped")


def _seconds(text: str | None, default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The lab's simulated Confluence node.")
    parser.add_argument(
        "--install",
        type=Path,
        # Started as <install>/lib/confluence-node.pyz: the installation is the folder above lib/.
        default=Path(sys.argv[0]).resolve().parent.parent,
        help="the installation directory (default: the parent of lib/)",
    )
    args = parser.parse_args(argv)
    os.umask(0o007)  # the database and shared home are shared by the node users' group
    install = Path(args.install).absolute()
    try:
        node = NodeProgram(read_install(install))
    except ConfigError as exc:
        NodeLog(install).write("ERROR", "confluence.lifecycle", f"Cannot start: {exc}")
        return 1
    signal.signal(signal.SIGTERM, node.request_stop)
    signal.signal(signal.SIGINT, node.request_stop)
    try:
        server = NodeServer(node)
    except OSError as exc:
        node.log.write("ERROR", "catalina.Connector", f"Failed to bind {node.listen_address}:{node.port}: {exc}")
        return 1
    node.adopt(start_up(node.install, node.log))
    return node.run(server)
