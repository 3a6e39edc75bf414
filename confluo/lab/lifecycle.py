"""`up` and `down`: bring a whole lab cluster up, and take it down again without leaving anything behind.

`up` builds every node from a real archive the way a production node is laid out, starts one sshd per node
(in ssh mode) and the node programs as the nodes' own users, waits until the cluster says every node is
ACTIVE, puts the load balancer in front and writes an inventory confluo can use as it is. `down` stops
everything by pid and removes what `up` added to the machine; it also cleans up after a half-built lab.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
import pwd
import secrets
import shutil
import sqlite3
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from confluo.lab import balancer, hosts, provision, spares, tarball
from confluo.lab import synchrony as synchrony_hosts
from confluo.lab.hosts import LabError
from confluo.lab.inventory_writer import write_inventory
from confluo.lab.model import ADMIN_USER, HTTP_PORT, Lab, LabOptions, Node, lab_json, lb_address, load, save, validate
from confluo.lab.node.clusterdb import init_database
from confluo.lab.node.versions import build_number_for
from confluo.lab.node_processes import node_process_pids, start_node, wait_until_active
from confluo.lab.slots import claim_slot, release_slot

DOWN_GRACE_SECONDS = 1.0
LAB_ENTRIES = (
    "lab.json", "inventory.yaml", "admin.password", "known_hosts",
    "keys", "db", "shared", "hosts", "lb", "run",
)  # fmt: skip

Progress = Callable[[str], None]
T = TypeVar("T")


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


def up(lab_dir: Path, options: LabOptions, progress: Progress = lambda _: None) -> Lab:
    """Start a lab in `lab_dir`; on any failure everything started so far is torn down again."""
    validate(options)
    lab_dir = lab_dir.resolve()
    mode = choose_mode(options)
    if mode == "ssh":
        check_traversable(lab_dir)
    if lab_json(lab_dir).exists():
        raise LabError(f"a lab already runs in {lab_dir}; stop it first with `confluo lab down --dir {lab_dir}`")
    _prepare_dir(lab_dir)
    lab = Lab(
        dir=lab_dir,
        slot=claim_slot(lab_dir),
        mode=mode,
        version=options.version,
        db=options.db,
        lb=options.lb,
        timings=options.timings,
        admin_password=secrets.token_urlsafe(18),
        node_count=options.nodes,
        lb_retries=options.lb_retries,
        synchrony_count=options.synchrony,
        spare_count=options.spare_hosts,
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


def _build(lab: Lab, progress: Progress) -> None:
    for folder in ("run", "hosts"):
        (lab.dir / folder).mkdir(mode=0o755)
    if lab.ssh:
        progress("creating login users, sudoers and keys")
        _create_accounts(lab)
    else:
        progress("local mode: no sshd, no users; every node runs as you")
    progress(f"building atlassian-confluence-{lab.version}.tar.gz and installing {lab.node_count} nodes")
    _create_database(lab)
    # Kept in the lab folder: the inventory names it as the installed release's archive (the merge's base).
    archive = tarball.build_archive(lab.version, lab.dir)
    archive.chmod(0o644)
    _parallel(lambda node: _provision_node(lab, node, archive), lab.nodes)
    for synchrony in lab.synchrony:
        synchrony_hosts.provision(lab, synchrony)
    for spare in lab.spares:
        spares.prepare(lab, spare)
    sshds = [*(n.sshd for n in lab.nodes), *(s.sshd for s in lab.synchrony), *(s.sshd for s in lab.spares)]
    if lab.ssh:
        progress("starting one sshd per host")
        _parallel(hosts.start_sshd, sshds)
        hosts.write_known_hosts(lab.known_hosts, sshds)
    with _database_held_open(lab):
        progress("starting the nodes")
        _parallel(start_node, lab.nodes)
        progress(f"building the next bug-fix release, {lab.next_version}")
        tarball.build_archive(lab.next_version, lab.dir)
        lab.next_archive.chmod(0o644)
        wait_until_active(lab, timeout=lab.timings.start_seconds + 20)
    if lab.synchrony:
        progress(f"starting {len(lab.synchrony)} standalone Synchrony nodes")
        for synchrony in lab.synchrony:
            synchrony_hosts.run_script(synchrony, synchrony_hosts.START_SCRIPT)
        synchrony_hosts.wait_until_serving(lab.synchrony, timeout=lab.timings.start_seconds + 20)
    if (lb := lab.balancer) is not None:
        progress(f"starting {lb.kind} on {lb.url}")
        _start_balancer(lab, lb)
    write_inventory(lab)


def _parallel(action: Callable[[T], object], nodes: Sequence[T]) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(action, node) for node in nodes]:
            future.result()


def _create_accounts(lab: Lab) -> None:
    _remove_accounts(lab)  # a crashed lab of the same slot may have left some
    hosts.create_group(lab.slot)
    keys = lab.client_key.parent
    keys.mkdir(mode=0o700)
    public_key = hosts.generate_key(lab.client_key, f"confluo-lab-{lab.slot}").read_text()
    every = [*(n.user for n in lab.nodes), *(s.user for s in lab.synchrony), *(s.user for s in lab.spares)]
    users = [user for user in every if user is not None]
    for user in users:
        hosts.create_user(user, hosts.group_name(lab.slot), public_key)
    hosts.install_sudoers(lab.slot, users)


def _create_database(lab: Lab) -> None:
    """The database folder and the shared home belong to the group of all node users (2770)."""
    for folder in (lab.db_file.parent, lab.shared_home):
        folder.mkdir(mode=0o755)
    init_database(
        lab.db_file,
        version=lab.version,
        admin_user=ADMIN_USER,
        admin_password=lab.admin_password,
        token=None,
        start_seconds=lab.timings.start_seconds,
        stop_seconds=lab.timings.stop_seconds,
        finalize_seconds=lab.timings.finalize_seconds,
        index_seconds=lab.timings.index_seconds,
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
        conf_user=node.user or pwd.getpwuid(os.geteuid()).pw_name,
        home=node.home,
        db_kind=lab.db,
    )
    provision.point_current(node.install_base, lab.version)
    provision.create_home(
        node.home,
        cluster_name=lab.cluster_name,
        shared_home=lab.shared_home,
        db_file=lab.db_file,
        db_kind=lab.db,
        build_number=build_number_for(lab.version),
        peers=",".join(n.address for n in lab.nodes),
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


def _start_balancer(lab: Lab, lb: balancer.Balancer) -> None:
    lb.directory.mkdir(mode=0o750)
    if lab.group is not None:
        shutil.chown(lb.directory, group=lab.group)
    servers = [balancer.Server(n.name, n.address, HTTP_PORT) for n in lab.nodes]
    # A spare host's server is there ahead of its node, out of the pool, named for the node it is meant to carry.
    servers += [balancer.Server(spare.node_name, spare.address, HTTP_PORT, prepared=True) for spare in lab.spares]
    balancer.start(lb, servers)
    if lb.kind == balancer.HAPROXY and lb.socket is not None:
        for server in servers:
            if server.prepared:
                balancer.set_haproxy_server_state(lb.socket, server.name, "maint")


# --- down -----------------------------------------------------------------------------------------------


def down(lab_dir: Path) -> Lab:
    lab = load(lab_dir)
    teardown(lab)
    return lab


def teardown(lab: Lab) -> None:
    """Stop everything the lab started, by pid, and remove what it added to the machine.

    Every step runs even if an earlier one failed, so a half-built lab is cleaned as far as possible.
    """
    failures: list[str] = []
    for step in (_stop_balancer, _stop_nodes, synchrony_hosts.stop_all, _stop_sshds, _remove_accounts, _forget):
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
        for sshd in [*(n.sshd for n in lab.nodes), *(s.sshd for s in lab.synchrony), *(s.sshd for s in lab.spares)]:
            hosts.stop_sshd(sshd, sessions=True)


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
