"""Puts the lab together: slots, `up`, `down`, `status`, `set`, `fault`, and the lab's record, `lab.json`.

`up` builds every node from a real archive the way a production node is laid out, starts one sshd per node
(in ssh mode) and the node programs as the nodes' own users, waits until the cluster says every node is
ACTIVE, puts the load balancer in front and writes an inventory confluo can use as it is. `down` stops
everything by pid and removes what `up` added to the machine; it also cleans up after a half-built lab.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from confluo.lab import balancer, confluence_node, hosts, provision, tarball
from confluo.lab.hosts import LabError

DEFAULT_DIR = Path("confluo-lab")
DEFAULT_VERSION = "9.2.13"
DATABASES = ("mysql", "postgresql")
LB_KINDS = (*balancer.KINDS, "none")
HTTP_PORT = 8090
SLOTS_DIR = hosts.LAB_STATE_DIR
MAX_SLOTS = 200  # third octets 200+ are left to other test suites (tests/lab_node)
MAX_NODES = 40
ADMIN_USER = "admin"
LAB_FORMAT = 1
# Faults the lab injects itself; the node program's own kinds come from confluence_node.FAULT_KINDS.
CRASH = "crash"
SSH_DOWN = "ssh-down"
CLEAR = "clear"
LAB_FAULT_KINDS = (CRASH, SSH_DOWN)
# The node processes' environment in ssh mode: what a fresh login would have, not root's.
NODE_PATH = "/usr/local/bin:/usr/bin:/bin"
DOWN_GRACE_SECONDS = 1.0
INVENTORY_TIMEOUT_SECONDS = 60
LAB_ENTRIES = (
    "lab.json", "inventory.yaml", "admin.password", "known_hosts",
    "keys", "db", "shared", "hosts", "lb", "run",
)  # fmt: skip


# ------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class Timings:
    start_seconds: float = 2.0
    stop_seconds: float = 1.0
    finalize_seconds: float = 2.0


@dataclass(frozen=True)
class LabOptions:
    nodes: int = 3
    version: str = DEFAULT_VERSION
    db: str = "mysql"
    lb: str = balancer.HAPROXY
    timings: Timings = field(default_factory=Timings)
    local: bool = False  # force local mode even where ssh mode is possible


@dataclass(frozen=True)
class Node:
    """One node and its "host": a folder of the lab with the layout of a production machine."""

    lab_dir: Path
    index: int
    slot: int
    user: str | None  # the login user and CONF_USER; None in local mode

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def address(self) -> str:
        return node_address(self.slot, self.index)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{HTTP_PORT}"

    @property
    def host_root(self) -> Path:
        return self.lab_dir / "hosts" / self.name

    @property
    def install_base(self) -> Path:
        return self.host_root / "opt/atlassian/confluence"

    @property
    def current(self) -> Path:
        return self.install_base / "current"

    @property
    def home(self) -> Path:
        return self.host_root / "var/atlassian/application-data/confluence"

    @property
    def sshd(self) -> hosts.Sshd:
        return hosts.Sshd(self.host_root / "sshd", self.address, self.user or "")

    @property
    def pid_record(self) -> Path:
        return self.lab_dir / "run" / f"{self.name}.pid"


@dataclass(frozen=True)
class Lab:
    """What lab.json records: enough to find, inspect and tear down every piece."""

    dir: Path
    slot: int
    mode: str  # "ssh" | "local"
    version: str
    db: str
    lb: str
    timings: Timings
    admin_password: str
    node_count: int
    state: str = "starting"  # "starting" while `up` runs, then "up"

    @property
    def ssh(self) -> bool:
        return self.mode == "ssh"

    @property
    def nodes(self) -> list[Node]:
        return [Node(self.dir, k, self.slot, self.user_of(k)) for k in range(1, self.node_count + 1)]

    def user_of(self, index: int) -> str | None:
        return hosts.user_name(self.slot, index) if self.ssh else None

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise LabError(f"no node {name!r} in the lab at {self.dir} (its nodes: {known})")

    @property
    def next_version(self) -> str:
        return next_bugfix(self.version)

    @property
    def next_archive(self) -> Path:
        return self.dir / f"atlassian-confluence-{self.next_version}.tar.gz"

    @property
    def db_file(self) -> Path:
        return self.dir / "db" / "confluence.db"

    @property
    def shared_home(self) -> Path:
        return self.dir / "shared"

    @property
    def client_key(self) -> Path:
        return self.dir / "keys" / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yaml"

    @property
    def password_file(self) -> Path:
        return self.dir / "admin.password"

    @property
    def group(self) -> str | None:
        return hosts.group_name(self.slot) if self.ssh else None

    @property
    def balancer(self) -> balancer.Balancer | None:
        if self.lb not in balancer.KINDS:
            return None
        gid = hosts.group_id(self.slot) if self.ssh and hosts.group_exists(hosts.group_name(self.slot)) else None
        return balancer.Balancer(self.lb, self.dir / "lb", lb_address(self.slot), socket_gid=gid)

    @property
    def api_url(self) -> str:
        return f"http://{lb_address(self.slot)}:{balancer.LB_PORT}" if self.lb != "none" else self.nodes[0].url


def node_address(slot: int, index: int) -> str:
    return f"127.0.{slot}.{10 + index}"


def lb_address(slot: int) -> str:
    return f"127.0.{slot}.10"


def next_bugfix(version: str) -> str:
    major, minor, patch = parse_version(version)
    return f"{major}.{minor}.{patch + 1}"


def parse_version(version: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if match is None:
        raise LabError(f"version {version!r} is not of the form X.Y.Z (e.g. {DEFAULT_VERSION})")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


# -------------------------------------------------------------------------------------------- lab.json


def lab_json(lab_dir: Path) -> Path:
    return lab_dir / "lab.json"


def save(lab: Lab) -> None:
    record = {
        "format": LAB_FORMAT,
        "dir": str(lab.dir),
        "slot": lab.slot,
        "mode": lab.mode,
        "state": lab.state,
        "version": lab.version,
        "db": lab.db,
        "lb": lab.lb,
        "timings": vars(lab.timings),
        "admin": {"username": ADMIN_USER, "password": lab.admin_password},
        "nodes": [{"name": n.name, "address": n.address, "user": n.user} for n in lab.nodes],
    }
    path = lab_json(lab.dir)
    draft = path.with_suffix(".json.new")
    # Created 0600 from the start: the file holds the admin password.
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(record, out, indent=2)
    draft.replace(path)


def load(lab_dir: Path) -> Lab:
    lab_dir = lab_dir.resolve()
    path = lab_json(lab_dir)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab in {lab_dir} (no lab.json); start one with `confluo lab up --dir {lab_dir}`") from None
    except (OSError, ValueError) as error:
        raise LabError(f"cannot read {path}: {error}") from None
    return Lab(
        dir=lab_dir,
        slot=int(record["slot"]),
        mode=record["mode"],
        version=record["version"],
        db=record["db"],
        lb=record["lb"],
        timings=Timings(**record["timings"]),
        admin_password=record["admin"]["password"],
        node_count=len(record["nodes"]),
        state=record.get("state", "up"),
    )


# ------------------------------------------------------------------------------------------------ slots


def _slot_owner_file(slot: int) -> Path:
    return SLOTS_DIR / str(slot) / "owner.json"


def _slot_is_stale(slot: int) -> bool:
    """Free again when its lab dir has no lab.json naming it and whoever claimed it is gone."""
    try:
        owner = json.loads(_slot_owner_file(slot).read_text())
    except (OSError, ValueError):
        # Being claimed right now (mkdir done, owner not yet written), or long abandoned.
        return time.time() - (SLOTS_DIR / str(slot)).stat().st_mtime > 30
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(lab_json(Path(owner["dir"])).read_text())["slot"] == slot:
            return False
    return not hosts.pid_alive(int(owner.get("pid", 0)))


def claim_slot(lab_dir: Path) -> int:
    """The lowest free slot, claimed atomically with mkdir (parallel `up`s never share one)."""
    if SLOTS_DIR == hosts.LAB_STATE_DIR:
        hosts.ensure_state_dir()
    SLOTS_DIR.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOTS):
        slot_dir = SLOTS_DIR / str(slot)
        if slot_dir.exists() and not (_slot_is_stale(slot) and _retire(slot_dir)):
            continue
        try:
            slot_dir.mkdir()
        except FileExistsError:
            continue
        owner = {"dir": str(lab_dir), "pid": os.getpid(), "claimed": time.time()}
        _slot_owner_file(slot).write_text(json.dumps(owner))
        return slot
    raise LabError(f"all {MAX_SLOTS} lab slots are taken ({SLOTS_DIR}); `confluo lab down` labs you no longer need")


def _retire(slot_dir: Path) -> bool:
    """Move a stale slot out of the way; only one of several racing claimers wins the rename."""
    tombstone = slot_dir.with_name(f".stale-{slot_dir.name}-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        slot_dir.rename(tombstone)
    except OSError:
        return False
    shutil.rmtree(tombstone, ignore_errors=True)
    return True


def release_slot(lab: Lab) -> None:
    slot_dir = SLOTS_DIR / str(lab.slot)
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(_slot_owner_file(lab.slot).read_text())["dir"] == str(lab.dir):
            shutil.rmtree(slot_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------------- up


def validate(options: LabOptions) -> None:
    parse_version(options.version)
    if not 1 <= options.nodes <= MAX_NODES:
        raise LabError(f"--nodes must be between 1 and {MAX_NODES}, not {options.nodes}")
    if options.db not in DATABASES:
        raise LabError(f"--db must be one of {', '.join(DATABASES)}, not {options.db!r}")
    if options.lb not in LB_KINDS:
        raise LabError(f"--lb must be one of {', '.join(LB_KINDS)}, not {options.lb!r}")
    timings = vars(options.timings)
    if any(value < 0 for value in timings.values()):
        raise LabError(f"timings must not be negative: {timings}")


def check_traversable(lab_dir: Path) -> None:
    """The node users must reach their files: every folder from / to the lab dir needs o+x."""
    for folder in [*reversed(lab_dir.parents), lab_dir]:
        if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
            raise LabError(
                f"the lab's node users cannot reach {lab_dir}: {folder} is not traversable by others "
                f"(mode {stat.S_IMODE(folder.stat().st_mode):o}); choose a --dir under a folder like /tmp "
                f"or run `chmod o+x {folder}`"
            )


def choose_mode(options: LabOptions) -> str:
    return "ssh" if hosts.ssh_supported() and not options.local else "local"


def up(lab_dir: Path, options: LabOptions, progress: Callable[[str], None] = lambda _: None) -> Lab:
    """Start a lab in `lab_dir`; on any failure everything started so far is torn down again."""
    validate(options)
    lab_dir = lab_dir.resolve()
    mode = choose_mode(options)
    if mode == "ssh":
        check_traversable(lab_dir)
    if lab_json(lab_dir).exists():
        raise LabError(f"a lab already runs in {lab_dir}; stop it first with `confluo lab down --dir {lab_dir}`")
    _prepare_dir(lab_dir)
    slot = claim_slot(lab_dir)
    lab = Lab(
        dir=lab_dir,
        slot=slot,
        mode=mode,
        version=options.version,
        db=options.db,
        lb=options.lb,
        timings=options.timings,
        admin_password=secrets.token_urlsafe(18),
        node_count=options.nodes,
    )
    save(lab)  # from here on `down` can clean up, even if this process dies
    try:
        _build(lab, progress)
    except BaseException as failure:
        try:
            teardown(lab)
        except LabError as cleanup:
            failure.add_note(f"and cleaning up after it failed too: {cleanup}")
        raise
    lab = dataclasses.replace(lab, state="up")
    save(lab)
    return lab


def _prepare_dir(lab_dir: Path) -> None:
    """Create the lab dir, or clear what a previous lab left there (only the lab's own entries)."""
    lab_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    for entry in LAB_ENTRIES:
        path = lab_dir / entry
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for archive in lab_dir.glob("atlassian-confluence-*.tar.gz"):
        archive.unlink()


def _build(lab: Lab, progress: Callable[[str], None]) -> None:
    for folder in ("run", "hosts"):
        (lab.dir / folder).mkdir(mode=0o755)
    if lab.ssh:
        progress("creating login users, sudoers and keys")
        _create_accounts(lab)
    else:
        progress("local mode: no sshd, no users; every node runs as you")
    progress(f"building atlassian-confluence-{lab.version}.tar.gz and installing {lab.node_count} nodes")
    _create_database(lab)
    with tempfile.TemporaryDirectory(prefix="confluo-lab-dist-") as dist:
        archive = tarball.build_archive(lab.version, Path(dist))
        _parallel(lambda node: _provision_node(lab, node, archive), lab.nodes)
    if lab.ssh:
        progress("starting one sshd per node")
        _parallel(lambda node: hosts.start_sshd(node.sshd), lab.nodes)
        hosts.write_known_hosts(lab.known_hosts, [n.sshd for n in lab.nodes])
    with _database_held_open(lab):
        progress("starting the nodes")
        _parallel(lambda node: start_node(lab, node), lab.nodes)
        progress(f"building the next bug-fix release, {lab.next_version}")
        tarball.build_archive(lab.next_version, lab.dir)
        lab.next_archive.chmod(0o644)
        wait_until_active(lab, timeout=lab.timings.start_seconds + 20)
    if (lb := lab.balancer) is not None:
        progress(f"starting {lb.kind} on {lb.url}")
        lb.directory.mkdir(mode=0o750)
        if lab.group is not None:
            shutil.chown(lb.directory, group=lab.group)
        balancer.start(lb, _lb_servers(lab))
    write_inventory(lab)


def _parallel(action: Callable[[Node], object], nodes: list[Node]) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(action, node) for node in nodes]:
            future.result()


def _create_accounts(lab: Lab) -> None:
    _remove_accounts(lab)  # a crashed lab of the same slot may have left some
    hosts.create_group(lab.slot)
    keys = lab.client_key.parent
    keys.mkdir(mode=0o700)
    public_key = hosts.generate_key(lab.client_key, f"confluo-lab-{lab.slot}").read_text()
    users = [n.user for n in lab.nodes if n.user is not None]
    for user in users:
        hosts.create_user(user, hosts.group_name(lab.slot), public_key)
    hosts.install_sudoers(lab.slot, users)


def _create_database(lab: Lab) -> None:
    """The database folder and the shared home belong to the group of all node users (2770)."""
    for folder in (lab.db_file.parent, lab.shared_home):
        folder.mkdir(mode=0o755)
    confluence_node.init_database(
        lab.db_file,
        version=lab.version,
        admin_user=ADMIN_USER,
        admin_password=lab.admin_password,
        token=None,
        start_seconds=lab.timings.start_seconds,
        stop_seconds=lab.timings.stop_seconds,
        finalize_seconds=lab.timings.finalize_seconds,
    )
    if lab.group is not None:
        for folder in (lab.db_file.parent, lab.shared_home):
            hosts.chown_tree(folder, None, lab.group)
            folder.chmod(0o2770)
        for db_file in lab.db_file.parent.iterdir():
            db_file.chmod(0o660)


@contextlib.contextmanager
def _database_held_open(lab: Lab) -> Iterator[None]:
    """Hold the database's -wal/-shm files in place, group-writable, while every node opens it at once.

    SQLite creates them with the creator's umask (0640 for 022) and widens the mode a moment later; a node
    of another user that opens them in that moment is left with a read-only database. An open connection
    keeps the files from being removed, so they are created once, here, and fixed before any node starts.
    """
    connection = sqlite3.connect(lab.db_file)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        if lab.group is not None:
            for suffix in ("-wal", "-shm"):
                companion = lab.db_file.with_name(lab.db_file.name + suffix)
                if companion.exists():
                    shutil.chown(companion, group=lab.group)
                    companion.chmod(0o660)
        yield
    finally:
        connection.close()


def _provision_node(lab: Lab, node: Node, archive: Path) -> None:
    node.install_base.mkdir(mode=0o755, parents=True)
    provision.write_host_marker(node.host_root, name=node.name, address=node.address, http_port=HTTP_PORT)
    install = provision.install_release(archive, node.install_base, lab.version)
    provision.customize_install(
        install,
        address=node.address,
        node_name=node.name,
        conf_user=node.user or _caller(),
        home=node.home,
        db_kind=lab.db,
    )
    provision.point_current(node.install_base, lab.version)
    provision.create_home(
        node.home,
        cluster_name=cluster_name(lab),
        shared_home=lab.shared_home,
        db_file=lab.db_file,
        db_kind=lab.db,
        build_number=confluence_node.build_number_for(lab.version),
    )
    if node.user is not None:
        _give_to_node_user(lab, node, install)
        hosts.prepare_sshd(node.sshd)


def _give_to_node_user(lab: Lab, node: Node, install: Path) -> None:
    """As in production: /opt is root's, Confluence writes only its logs/work/temp and its local home."""
    for writable in ("logs", "work", "temp"):
        (install / writable).mkdir(exist_ok=True)
        hosts.chown_tree(install / writable, node.user, lab.group)
    hosts.chown_tree(node.home, node.user, lab.group)
    node.home.chmod(0o750)


def _caller() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def cluster_name(lab: Lab) -> str:
    return f"confluo-lab-{lab.slot}"


def _lb_servers(lab: Lab) -> list[balancer.Server]:
    return [balancer.Server(n.name, n.address, HTTP_PORT) for n in lab.nodes]


# ---------------------------------------------------------------------------------------- node processes


def _as_node_user(lab: Lab, node: Node, argv: list[str]) -> list[str]:
    if node.user is None:
        return argv
    home = pwd.getpwnam(node.user).pw_dir
    environment = [
        f"PATH={NODE_PATH}",
        f"HOME={home}",
        f"USER={node.user}",
        f"LOGNAME={node.user}",
        "LANG=C.UTF-8",
    ]
    return ["runuser", "-u", node.user, "--", "env", "-i", *environment, *argv]


def _run_script(lab: Lab, node: Node, script: str) -> None:
    path = node.current / "bin" / script
    argv = _as_node_user(lab, node, [str(path)])
    # Its own session: the node must not get the caller's Ctrl-C or die with its terminal.
    done = subprocess.run(
        argv,
        cwd=node.current,
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,
        check=False,
    )
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise LabError(f"{path} failed on {node.name} with exit code {done.returncode}: {output}")


def start_node(lab: Lab, node: Node) -> int | None:
    """Start the node's current installation with its start script, as its user; returns its pid."""
    _run_script(lab, node, "start-confluence.sh")
    pid = hosts.read_pid(node.current / "work" / "catalina.pid")
    if pid is not None:
        node.pid_record.write_text(f"{pid}\n")
    return pid


def stop_node(lab: Lab, node: Node) -> None:
    """Ask the node to stop (SIGTERM via its stop script); it takes stop_seconds to go OFFLINE."""
    _run_script(lab, node, "stop-confluence.sh")


def _is_node_process(lab: Lab, pid: int | None) -> bool:
    return hosts.runs(pid, "confluence_node") and hosts.runs(pid, str(lab.dir / "hosts"))


def node_process_pids(lab: Lab) -> set[int]:
    """Every node process of the lab, of every installation (confluo may have started a new one)."""
    candidates = {hosts.read_pid(p) for p in lab.dir.glob("hosts/*/opt/atlassian/confluence/*/work/catalina.pid")}
    candidates |= {hosts.read_pid(p) for p in (lab.dir / "run").glob("*.pid")}
    with contextlib.suppress(Exception):
        candidates |= {row.get("pid") for row in confluence_node.cluster_view(lab.db_file)["nodes"]}
    return {pid for pid in candidates if pid is not None and _is_node_process(lab, pid)}


def wait_until_active(lab: Lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        view = _nodes_by_name(lab)
        states = {n.name: view.get(n.name, {}).get("state", "ABSENT") for n in lab.nodes}
        if all(state == "ACTIVE" for state in states.values()):
            return
        failed = {n: s for n, s in states.items() if s == "ERROR"}
        if failed or time.monotonic() > deadline:
            raise LabError(_not_active_message(lab, states, view))
        time.sleep(0.1)


def _not_active_message(lab: Lab, states: dict[str, str], view: dict[str, dict[str, Any]]) -> str:
    lines = [f"the nodes did not all become ACTIVE: {states}"]
    strangers = sorted(set(view) - _names(lab))
    if strangers:
        lines.append(f"  the cluster also lists: {', '.join(strangers)}")
    for node in lab.nodes:
        if states[node.name] != "ACTIVE":
            problem = view.get(node.name, {}).get("problem") or "no problem reported"
            log = node.current / "logs" / "catalina.out"
            lines.append(f"  {node.name}: {problem}; its log {log} ends with:")
            lines.extend(f"    | {line}" for line in _tail(log, 8))
    return "\n".join(lines)


def _tail(path: Path, count: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-count:]
    except OSError as error:
        return [f"(cannot read it: {error.strerror})"]


def _nodes_by_name(lab: Lab) -> dict[str, dict[str, Any]]:
    try:
        view = confluence_node.cluster_view(lab.db_file)
    except Exception:
        return {}
    return {row["name"]: row for row in view["nodes"]}


# ------------------------------------------------------------------------------------------------ down


def down(lab_dir: Path) -> Lab:
    lab = load(lab_dir)
    teardown(lab)
    return lab


def teardown(lab: Lab) -> None:
    """Stop everything the lab started, by pid, and remove what it added to the machine.

    Every step runs even if an earlier one failed, so a half-built lab is cleaned as far as possible.
    """
    failures: list[str] = []
    for step in (_stop_balancer, _stop_nodes, _stop_sshds, _remove_accounts, _forget):
        try:
            step(lab)
        except Exception as error:
            failures.append(f"{step.__name__.lstrip('_').replace('_', ' ')}: {error}")
    if failures:
        raise LabError("the lab was not completely taken down:\n  " + "\n  ".join(failures))


def _stop_balancer(lab: Lab) -> None:
    if lab.lb in balancer.KINDS:
        # Built without the group lookup: the group may be gone already when cleaning a broken lab.
        balancer.stop(balancer.Balancer(lab.lb, lab.dir / "lb", lb_address(lab.slot)))


def _stop_nodes(lab: Lab) -> None:
    hosts.terminate(node_process_pids(lab), grace=DOWN_GRACE_SECONDS)
    for record in (lab.dir / "run").glob("*.pid"):
        record.unlink()


def _stop_sshds(lab: Lab) -> None:
    if lab.ssh:
        for node in lab.nodes:
            hosts.stop_sshd(node.sshd, sessions=True)


def _remove_accounts(lab: Lab) -> None:
    if not lab.ssh:
        return
    for user in hosts.lab_users(lab.slot):
        hosts.remove_user(user)
    hosts.remove_group(lab.slot)
    hosts.remove_sudoers(lab.slot)


def _forget(lab: Lab) -> None:
    lab_json(lab.dir).unlink(missing_ok=True)
    release_slot(lab)


# ------------------------------------------------------------------------------------------- inventory


def inventory_document(lab: Lab) -> dict[str, Any]:
    """The inventory for this cluster, in the shape of inventory.sample.yaml."""
    document: dict[str, Any] = {
        "cluster": {
            "name": cluster_name(lab),
            "api_url": lab.api_url,
            "timeout_seconds": 10,
            "credentials": {"username": ADMIN_USER, "password_file": str(lab.password_file)},
        },
        "target": {
            "version": lab.next_version,
            "archive": str(lab.next_archive),
            "sha256": sha256_of(lab.next_archive),
        },
        "database": lab.db,
        "defaults": _inventory_defaults(lab),
        "keep_releases": 3,
        "nodes": [_inventory_node(lab, node) for node in lab.nodes],
    }
    return document


def _inventory_defaults(lab: Lab) -> dict[str, Any]:
    timeouts = {
        "stop_seconds": INVENTORY_TIMEOUT_SECONDS,
        "start_seconds": INVENTORY_TIMEOUT_SECONDS,
        "finalize_seconds": INVENTORY_TIMEOUT_SECONDS,
    }
    defaults: dict[str, Any] = {}
    if lab.ssh:
        defaults["ssh"] = {
            "port": hosts.SSH_PORT,
            "key": str(lab.client_key),
            "known_hosts": str(lab.known_hosts),
        }
        defaults["sudo"] = True
    defaults["service"] = {"kind": "script"}
    defaults["timeouts"] = timeouts
    return defaults


def _inventory_node(lab: Lab, node: Node) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": node.name, "host": node.address, "url": node.url}
    if node.user is not None:
        entry["ssh"] = {"user": node.user}
        entry["run_as"] = node.user
    else:
        entry["transport"] = "local"
        entry["sudo"] = False
    entry["install"] = {"layout": "symlink", "base": str(node.install_base)}
    entry["home"] = str(node.home)
    return entry


def write_inventory(lab: Lab) -> None:
    fd = os.open(lab.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(lab.admin_password + "\n")
    header = f"# written by `confluo lab up`: the lab in {lab.dir} (slot {lab.slot}, {lab.mode} mode)\n"
    body = yaml.safe_dump(inventory_document(lab), sort_keys=False, default_flow_style=False)
    lab.inventory.write_text(header + body)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------- status


def status(lab_dir: Path) -> dict[str, Any]:
    """The lab as `confluo lab status --json` shows it (format in docs/lab.md)."""
    lab = load(lab_dir)
    try:
        view = confluence_node.cluster_view(lab.db_file)
    except Exception as error:
        raise LabError(f"cannot read the cluster database {lab.db_file}: {error}") from None
    rows = {row["name"]: row for row in view["nodes"]}
    http = _http_states([n.url for n in lab.nodes])
    lb = lab.balancer
    return {
        "dir": str(lab.dir),
        "mode": lab.mode,
        "inventory": str(lab.inventory),
        "next_version": lab.next_version,
        "next_archive": str(lab.next_archive),
        "api": {"url": lab.nodes[0].url, "username": ADMIN_USER, "password": lab.admin_password},
        "lb": {
            "kind": lab.lb,
            "url": lb.url if lb else None,
            "socket": str(lb.socket) if lb and lb.socket else None,
        },
        "cluster": {"state": view["state"], "upgrade_mode": view["upgrade_mode"], "version": view["version"]},
        "nodes": [_node_status(lab, node, rows, http[node.url]) for node in lab.nodes] + _unknown_rows(lab, rows),
    }


def _node_status(lab: Lab, node: Node, rows: dict[str, dict[str, Any]], http_status: str) -> dict[str, Any]:
    row = rows.get(node.name, {})
    entry: dict[str, Any] = {
        "name": node.name,
        "id": row.get("id"),
        "url": node.url,
        "address": node.address,
        "state": row.get("state", "ABSENT"),
        "status": http_status,
        "version": row.get("version"),
        "install_dir": str(node.current),
        "home": str(node.home),
        "pid": row.get("pid"),
        "problems": _problems(lab, node, row, rows),
    }
    if node.user is not None:
        entry["ssh"] = {
            "host": node.address,
            "port": hosts.SSH_PORT,
            "user": node.user,
            "key": str(lab.client_key),
            "known_hosts": str(lab.known_hosts),
        }
    return entry


def _problems(lab: Lab, node: Node, row: dict[str, Any], rows: dict[str, dict[str, Any]]) -> list[str]:
    problems = [row["problem"]] if row.get("problem") else []
    if not row:
        problems.append("never joined the cluster")
    for other_name, other in rows.items():
        if other_name not in _names(lab) and other.get("address") == node.address and other.get("state") != "OFFLINE":
            problems.append(f"runs as {other_name!r}: -Dconfluence.cluster.node.name is missing from bin/setenv.sh")
    if node.user is not None and node.sshd.pid() is None:
        problems.append("sshd is down")
    return problems


def _names(lab: Lab) -> set[str]:
    return {n.name for n in lab.nodes}


def _unknown_rows(lab: Lab, rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the cluster that are none of the lab's nodes (e.g. "Not configured")."""
    return [
        {
            "name": name,
            "id": row.get("id"),
            "address": row.get("address"),
            "state": row.get("state"),
            "version": row.get("version"),
            "pid": row.get("pid"),
            "problems": [row["problem"]] if row.get("problem") else [],
        }
        for name, row in rows.items()
        if name not in _names(lab)
    ]


def _http_states(urls: list[str]) -> dict[str, str]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(urls, pool.map(http_status, urls), strict=True))


def http_status(url: str) -> str:
    """The `state` that GET /status reports, or what went wrong (UNREACHABLE, HTTP 500, ...)."""
    try:
        with urllib.request.urlopen(f"{url}/status", timeout=2) as response:  # noqa: S310 - lab http URLs
            body = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
        with contextlib.suppress(ValueError, AttributeError):
            return str(json.loads(body)["state"])
        return f"HTTP {error.code}"
    except OSError:
        return "UNREACHABLE"
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(json.loads(body)["state"])
    return "UNKNOWN"


# ------------------------------------------------------------------------------------ set, fault, nodes


def set_load(lab_dir: Path, node_name: str, *, tasks: int | None = None, users: int | None = None) -> None:
    lab = load(lab_dir)
    lab.node(node_name)
    for label, value in (("tasks", tasks), ("users", users)):
        if value is not None and value < 0:
            raise LabError(f"--{label} must not be negative, not {value}")
    confluence_node.set_node_load(lab.db_file, node_name, tasks=tasks, users=users)


def fault_kinds() -> tuple[str, ...]:
    """The node program's faults plus the lab's own (crash, ssh-down), without repeats."""
    return tuple(dict.fromkeys((*confluence_node.FAULT_KINDS, *LAB_FAULT_KINDS)))


def fault(lab_dir: Path, node_name: str, kind: str) -> str:
    """Inject `kind` into a node (or `clear` its fault); returns a sentence saying what was done."""
    lab = load(lab_dir)
    node = lab.node(node_name)
    if kind == CLEAR:
        return _clear(lab, node)
    if kind not in fault_kinds():
        raise LabError(f"unknown fault kind {kind!r}; choose one of {', '.join((*fault_kinds(), CLEAR))}")
    if kind == CRASH:
        return _crash(lab, node)
    if kind == SSH_DOWN:
        return _ssh_down(lab, node)
    confluence_node.set_fault(lab.db_file, node.name, kind)
    return f"{node.name}: fault {kind} set"


def _crash(lab: Lab, node: Node) -> str:
    pids = _node_pids(lab, node)
    if not pids:
        raise LabError(f"{node.name} has no running node process to crash")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    hosts.wait_until_gone(pids, 2.0)
    return f"{node.name}: node process {', '.join(map(str, sorted(pids)))} killed with SIGKILL"


def _node_pids(lab: Lab, node: Node) -> set[int]:
    """The node's live processes: the one its cluster row names and the ones its pid files name."""
    candidates = {hosts.read_pid(p) for p in node.install_base.glob("*/work/catalina.pid")}
    candidates.add(_nodes_by_name(lab).get(node.name, {}).get("pid"))
    candidates.add(hosts.read_pid(node.pid_record))
    return {pid for pid in candidates if pid is not None and _is_node_process(lab, pid)}


def _ssh_down(lab: Lab, node: Node) -> str:
    if not lab.ssh:
        raise LabError(f"the lab at {lab.dir} runs in local mode: its nodes have no sshd to stop")
    hosts.stop_sshd(node.sshd)
    return f"{node.name}: sshd stopped ({node.address}:{hosts.SSH_PORT} refuses connections)"


def _clear(lab: Lab, node: Node) -> str:
    confluence_node.set_fault(lab.db_file, node.name, None)
    if lab.ssh and node.sshd.pid() is None:
        hosts.start_sshd(node.sshd)
        return f"{node.name}: fault cleared, sshd started again"
    return f"{node.name}: fault cleared"


def start(lab_dir: Path, node_name: str) -> int | None:
    lab = load(lab_dir)
    return start_node(lab, lab.node(node_name))


def stop(lab_dir: Path, node_name: str) -> None:
    lab = load(lab_dir)
    stop_node(lab, lab.node(node_name))
