"""The steps of one node's upgrade. Each step can show what it would do (for `plan`), tell from the node
whether it is already done (so a re-run skips it), do it, and undo it.

The same Command builders serve `preview()` and `apply()`: the plan shows exactly what the upgrade runs.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluo import configfiles
from confluo.cluster_api import ApiError, ClusterApi, ClusterInfo, NodeInfo, NodeState, StatusState, node_status
from confluo.errors import ConfluoError, ExitCode
from confluo.inventory import Node
from confluo.layout import INIT_PROPERTIES, PID_FILE, POM_PROPERTIES, RUNTIME_DIRS, WEBINF_LIB, NodePaths
from confluo.probe import SERVICE_FILE_KEY
from confluo.remote import (
    CHOWN,
    CP,
    LN,
    MKDIR,
    MV,
    RM,
    SYSTEMCTL,
    TAR,
    Command,
    Remote,
    as_user,
    plain,
    root,
    write_file_command,
)
from confluo.transport import quote_argv

POLL_SECONDS = 0.1
# A node reporting ERROR this many polls in a row has failed; one poll could be a transition.
ERROR_POLLS = 5


class WaitTimedOut(ConfluoError):
    exit_code = ExitCode.FAILED_AFTER_CHANGES


class NodeFailed(ConfluoError):
    exit_code = ExitCode.FAILED_AFTER_CHANGES


@dataclass(frozen=True)
class FileChange:
    path: str
    diff: str


@dataclass(frozen=True)
class Preview:
    """What a step will do, as `plan` prints it."""

    commands: tuple[str, ...] = ()
    files: tuple[FileChange, ...] = ()
    waits: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeUpgrade:
    """Everything the steps of one node need to know, fixed before the first change."""

    node: Node
    paths: NodePaths
    old_install: str
    target_version: str
    archive_sha256: str
    archive_bytes: int
    local_archive: str
    shared_staging: bool  # the archive is sent once into the shared home, not to every node
    customizations: tuple[str, ...]  # the listed files that exist in the old installation
    drivers: tuple[str, ...]  # JDBC driver jars to carry over
    stock_files: dict[str, str] = field(default_factory=dict)
    old_files: dict[str, str] = field(default_factory=dict)
    login_user: str | None = None

    def old(self, relative: str) -> str:
        return posixpath.join(self.old_install, relative)

    def new(self, relative: str) -> str:
        return posixpath.join(self.paths.new_install, relative)


@dataclass
class StepContext:
    remote: Remote
    api: ClusterApi
    on_wait: Callable[[str], None] = lambda observed: None
    sleep: Callable[[float], None] = time.sleep


class Step:
    """One unit of change on one node."""

    name = "step"

    def __init__(self, upgrade: NodeUpgrade) -> None:
        self.u = upgrade

    def preview(self) -> Preview:
        raise NotImplementedError

    def is_done(self, ctx: StepContext) -> bool:
        raise NotImplementedError

    def apply(self, ctx: StepContext) -> None:
        raise NotImplementedError

    def undo(self, ctx: StepContext) -> None:
        """Most steps only add to a new installation, which is simply left unused."""

    def _run_all(self, ctx: StepContext, commands: tuple[Command, ...], timeout: float = 300) -> None:
        for command in commands:
            ctx.remote.run(command, timeout=timeout)


def _test(ctx: StepContext, script: str, *args: str) -> bool:
    """A read-only check on the node: true when the shell snippet exits 0."""
    line = quote_argv(["bash", "-c", script, "confluo-check", *args])
    return ctx.remote.shell(line, timeout=60, check=False).ok


def cluster_entry(cluster: ClusterInfo, node: Node) -> NodeInfo | None:
    """The node as the cluster lists it (see ClusterInfo.find)."""
    return cluster.find(node.name, node.cluster_id, node.host)


def _process_alive(ctx: StepContext, pid_file: str) -> bool:
    """/proc, not kill -0: the process may belong to another user than the login user."""
    return _test(ctx, 'pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && [ -d "/proc/$pid" ]', pid_file)


# -- pre-staging: every node in parallel, while all nodes still serve -------------------------------------


class TransferArchive(Step):
    """Sent over the open SSH connection, then verified as it lies on the node's disk.

    Hashing while receiving (`tee | sha256sum`) was measured slower on the lab (6.8 s against 5.6 s per node for
    700 MiB, bench/prestage.py) and checks only the stream, not what was written: the file is read back instead.
    """

    name = "transfer archive"
    bytes_sent = 0
    _VERIFY = '[ -f "$2" ] && echo "$1  $2" | sha256sum -c --quiet'

    def _partial(self) -> str:
        return self.u.paths.staged_archive + ".part"

    def _commands(self) -> tuple[Command, Command, Command]:
        staged = self.u.paths.staged_archive
        return (
            # Shared: the other nodes' users (one group) read it; per node: the login user's alone.
            plain(MKDIR, "-p", "-m", "750" if self.u.shared_staging else "700", posixpath.dirname(staged)),
            plain("bash", "-c", self._VERIFY, "verify", self.u.archive_sha256, self._partial()),
            plain(MV, "-f", self._partial(), staged),
        )

    def preview(self) -> Preview:
        mkdir, verify, move = (c.line(self.u.node, self.u.login_user) for c in self._commands())
        sending = f"(send {self.u.local_archive}, {self.u.archive_bytes} bytes, into {self._partial()})"
        return Preview(commands=(mkdir, sending, verify, move))

    def is_done(self, ctx: StepContext) -> bool:
        return _test(ctx, self._VERIFY, self.u.archive_sha256, self.u.paths.staged_archive)

    def apply(self, ctx: StepContext) -> None:
        mkdir, verify, move = self._commands()
        ctx.remote.run(mkdir)
        self.bytes_sent = ctx.remote.transport.upload(self.u.local_archive, self._partial(), timeout=3600)
        if not ctx.remote.run(verify, timeout=600, check=False).ok:
            ctx.remote.run(plain(RM, "-f", self._partial()), check=False)
            raise NodeFailed(
                f"{self.u.node.name}: the archive on the node does not have sha256 {self.u.archive_sha256}; "
                "the partial file was removed",
                hint="check the network path and the node's disk, then run again",
            )
        ctx.remote.run(move)


class ExtractRelease(Step):
    """Into a new directory beside the old one, never over it; renamed into place only when complete."""

    name = "extract release"

    def _partial(self) -> str:
        return self.u.paths.new_install + ".confluo-partial"

    def _commands(self) -> tuple[Command, ...]:
        partial = self._partial()
        commands = [
            root(RM, "-rf", "--", partial),
            root(MKDIR, "-p", partial),
            root(
                TAR,
                "-xzf",
                self.u.paths.staged_archive,
                "-C",
                partial,
                "--strip-components=1",
                "--no-same-owner",
            ),
        ]
        run_as = self.u.node.run_as
        if run_as:
            runtime_dirs = [posixpath.join(partial, d) for d in RUNTIME_DIRS]
            commands.append(root(MKDIR, "-p", *runtime_dirs))
            commands.append(root(CHOWN, "-R", f"{run_as}:", *runtime_dirs))
        commands.append(root(MV, "-T", partial, self.u.paths.new_install))
        return tuple(commands)

    def preview(self) -> Preview:
        return Preview(commands=tuple(c.line(self.u.node, self.u.login_user) for c in self._commands()))

    def is_done(self, ctx: StepContext) -> bool:
        return _test(
            ctx,
            'grep -qx "version=$1" "$2"',
            self.u.target_version,
            self.u.new(POM_PROPERTIES),
        )

    def apply(self, ctx: StepContext) -> None:
        if _test(ctx, '[ -e "$1" ]', self.u.paths.new_install):
            raise NodeFailed(
                f"{self.u.node.name}: {self.u.paths.new_install} exists but is not a complete {self.u.target_version}"
                " installation; confluo will not write over it",
                hint="move it aside (it may hold something of value), then run again",
            )
        self._run_all(ctx, self._commands(), timeout=1800)


# -- the rolling phase: one node at a time -----------------------------------------------------------------


def _service_command(node: Node, action: str, install: str) -> Command:
    kind = node.service.kind
    if kind == "initd":
        return root(str(node.service.definition), action)
    if kind == "systemd":
        return root(SYSTEMCTL, action, node.service.name)
    return as_user(posixpath.join(install, "bin", f"{action}-confluence.sh"))


class StopNode(Step):
    """Graceful stop, then wait for the process to exit and the cluster to show the node OFFLINE."""

    name = "stop"

    def _command(self) -> Command:
        in_use = self.u.paths.current_link or self.u.old_install
        return _service_command(self.u.node, "stop", in_use)

    def preview(self) -> Preview:
        return Preview(
            commands=(self._command().line(self.u.node, self.u.login_user),),
            waits=(
                f"the process in {self.u.old(PID_FILE)} exits and the cluster shows {self.u.node.name} OFFLINE "
                f"(deadline {self.u.node.timeouts.stop_seconds:.0f} s)",
            ),
        )

    def _offline_in_cluster(self, ctx: StepContext) -> bool:
        try:
            info = cluster_entry(ctx.api.cluster(), self.u.node)
        except ApiError:
            return False  # not known yet: keep waiting, within the deadline
        return info is None or info.state is NodeState.OFFLINE

    def is_done(self, ctx: StepContext) -> bool:
        return not _process_alive(ctx, self.u.old(PID_FILE)) and self._offline_in_cluster(ctx)

    def apply(self, ctx: StepContext) -> None:
        # One deadline for the stop command and the wait after it.
        deadline = time.monotonic() + self.u.node.timeouts.stop_seconds
        ctx.remote.run(self._command(), timeout=self.u.node.timeouts.stop_seconds)
        while True:
            alive = _process_alive(ctx, self.u.old(PID_FILE))
            offline = not alive and self._offline_in_cluster(ctx)
            if offline:
                return
            ctx.on_wait("process still running" if alive else "process exited; cluster not yet OFFLINE")
            if time.monotonic() > deadline:
                raise WaitTimedOut(
                    f"{self.u.node.name}: did not stop within {self.u.node.timeouts.stop_seconds:.0f} s "
                    f"({'its process still runs' if alive else 'the cluster does not show it OFFLINE'})",
                    hint=f"a hung shutdown: look at {self.u.old('logs/catalina.out')} on the node; once the "
                    "process is gone, run `confluo upgrade` again. Nothing was changed on this node yet.",
                )
            ctx.sleep(POLL_SECONDS)


class PointHome(Step):
    """confluence-init.properties of the new installation names the node's existing local home."""

    name = "set home"

    def _content(self) -> str:
        stock = self.u.stock_files.get(INIT_PROPERTIES, "")
        return configfiles.with_home(stock, str(self.u.node.home))

    def preview(self) -> Preview:
        stock = self.u.stock_files.get(INIT_PROPERTIES, "")
        diff = configfiles.unified_diff(INIT_PROPERTIES, stock, self._content())
        return Preview(
            commands=(
                write_file_command(self.u.new(INIT_PROPERTIES)).line(self.u.node, self.u.login_user)
                + " <<< (the file below)",
            ),
            files=(FileChange(self.u.new(INIT_PROPERTIES), diff),),
        )

    def is_done(self, ctx: StepContext) -> bool:
        result = ctx.remote.shell(quote_argv(["cat", self.u.new(INIT_PROPERTIES)]), check=False)
        return result.ok and configfiles.read_home(result.stdout) == str(self.u.node.home)

    def apply(self, ctx: StepContext) -> None:
        # Read the file that is really there, so its comments are kept even if it differs from the archive's.
        current = ctx.remote.shell(quote_argv(["cat", self.u.new(INIT_PROPERTIES)]), check=False)
        base = current.stdout if current.ok else self._content()
        content = configfiles.with_home(base, str(self.u.node.home))
        ctx.remote.run(write_file_command(self.u.new(INIT_PROPERTIES)), stdin=content.encode())


class CopyDriver(Step):
    """MySQL and Oracle drivers are not bundled with Confluence: the old installation's jar goes along."""

    name = "copy JDBC driver"

    def _commands(self) -> tuple[Command, ...]:
        return tuple(
            root(CP, "-p", "--", self.u.old(posixpath.join(WEBINF_LIB, jar)), self.u.new(WEBINF_LIB) + "/")
            for jar in self.u.drivers
        )

    def preview(self) -> Preview:
        return Preview(commands=tuple(c.line(self.u.node, self.u.login_user) for c in self._commands()))

    def is_done(self, ctx: StepContext) -> bool:
        return all(_test(ctx, '[ -f "$1" ]', self.u.new(posixpath.join(WEBINF_LIB, jar))) for jar in self.u.drivers)

    def apply(self, ctx: StepContext) -> None:
        self._run_all(ctx, self._commands())


class CarryCustomizations(Step):
    """Files the administrator changed in the old installation (ports, node name, SSO, ...) go along."""

    name = "carry customizations"

    def _commands(self) -> tuple[Command, ...]:
        return tuple(root(CP, "-p", "--", self.u.old(rel), self.u.new(rel)) for rel in self.u.customizations)

    def preview(self) -> Preview:
        files = tuple(FileChange(self.u.new(rel), self._diff(rel)) for rel in self.u.customizations)
        return Preview(commands=tuple(c.line(self.u.node, self.u.login_user) for c in self._commands()), files=files)

    def _diff(self, rel: str) -> str:
        if rel not in self.u.old_files:
            return "(the login user cannot read it: copied as root, unseen)\n"
        return configfiles.unified_diff(rel, self.u.stock_files.get(rel, ""), self.u.old_files[rel])

    def is_done(self, ctx: StepContext) -> bool:
        return all(_test(ctx, 'cmp -s -- "$1" "$2"', self.u.old(rel), self.u.new(rel)) for rel in self.u.customizations)

    def apply(self, ctx: StepContext) -> None:
        self._run_all(ctx, self._commands())


class Repoint(Step):
    """The service now starts the new installation: an atomic symlink swap, or the init.d script / systemd unit
    rewritten to name the new installation."""

    name = "repoint service"

    def _link_commands(self, install: str) -> tuple[Command, ...]:
        link = self.u.paths.current_link
        assert link is not None
        temporary = link + ".confluo-new"
        # mv -T renames over the old link in one step: `current` never stops existing.
        return (root(LN, "-sfn", install, temporary), root(MV, "-T", temporary, link))

    def _definition(self) -> str:
        definition = self.u.node.service.definition
        assert definition is not None
        return str(definition)

    def _rewrite_commands(self) -> tuple[Command, ...]:
        commands = [write_file_command(self._definition())]
        if self.u.node.service.kind == "systemd":
            commands.append(root(SYSTEMCTL, "daemon-reload"))
        return tuple(commands)

    def preview(self) -> Preview:
        if self.u.paths.current_link is not None:
            return Preview(
                commands=tuple(
                    c.line(self.u.node, self.u.login_user) for c in self._link_commands(self.u.paths.new_install)
                )
            )
        before = self.u.old_files.get(SERVICE_FILE_KEY, "")
        after = configfiles.repoint(before, self.u.old_install, self.u.paths.new_install)
        lines = [c.line(self.u.node, self.u.login_user) for c in self._rewrite_commands()]
        lines[0] += " <<< (the file below)"
        diff = configfiles.unified_diff(self._definition(), before, after)
        return Preview(commands=tuple(lines), files=(FileChange(self._definition(), diff),))

    def is_done(self, ctx: StepContext) -> bool:
        link = self.u.paths.current_link
        if link is not None:
            result = ctx.remote.shell(quote_argv(["readlink", "-f", "--", link]), check=False)
            return result.stdout.strip() == self.u.paths.new_install
        text = self._read_definition(ctx)
        return configfiles.names_path(text, self.u.paths.new_install)

    def apply(self, ctx: StepContext) -> None:
        if self.u.paths.current_link is not None:
            self._run_all(ctx, self._link_commands(self.u.paths.new_install))
        else:
            self._rewrite(ctx, self.u.old_install, self.u.paths.new_install)

    def undo(self, ctx: StepContext) -> None:
        if self.u.paths.current_link is not None:
            self._run_all(ctx, self._link_commands(self.u.old_install))
        else:
            self._rewrite(ctx, self.u.paths.new_install, self.u.old_install)

    def _read_definition(self, ctx: StepContext) -> str:
        result = ctx.remote.shell(quote_argv(["cat", "--", self._definition()]), check=False)
        return result.stdout if result.ok else ""

    def _rewrite(self, ctx: StepContext, old: str, new: str) -> None:
        text = self._read_definition(ctx)
        if not configfiles.names_path(text, old):
            raise NodeFailed(
                f"{self.u.node.name}: {self._definition()} does not name {old}; confluo cannot tell how to repoint it",
                hint="point the service at the new installation by hand, then run `confluo upgrade` again",
            )
        write, *after = self._rewrite_commands()
        ctx.remote.run(write, stdin=configfiles.repoint(text, old, new).encode())
        self._run_all(ctx, tuple(after))


class StartNode(Step):
    """Start, then wait for /status RUNNING and the cluster to show the node ACTIVE on the new version."""

    name = "start"

    def _command(self) -> Command:
        in_use = self.u.paths.current_link or self.u.paths.new_install
        return _service_command(self.u.node, "start", in_use)

    def preview(self) -> Preview:
        return Preview(
            commands=(self._command().line(self.u.node, self.u.login_user),),
            waits=(
                f"{self.u.node.url}/status says RUNNING and the cluster shows {self.u.node.name} ACTIVE on "
                f"{self.u.target_version} (deadline {self.u.node.timeouts.start_seconds:.0f} s)",
            ),
        )

    def _observe(self, ctx: StepContext) -> tuple[StatusState, NodeState | None, str | None]:
        status = node_status(self.u.node.url, verify_tls=ctx.api.verify_tls)
        try:
            info = cluster_entry(ctx.api.cluster(), self.u.node)
        except ApiError:
            return status, None, None  # a passing API error is no verdict on this node; the deadline is
        return status, (info.state if info else None), (info.version if info else None)

    def is_done(self, ctx: StepContext) -> bool:
        status, state, version = self._observe(ctx)
        return status is StatusState.RUNNING and state is NodeState.ACTIVE and version == self.u.target_version

    def apply(self, ctx: StepContext) -> None:
        # Started already (a re-run, or the connection dropped after the start): wait for it, do not start twice.
        if not _process_alive(ctx, self.u.new(PID_FILE)):
            ctx.remote.run(self._command(), timeout=120)
        deadline = time.monotonic() + self.u.node.timeouts.start_seconds
        errors_seen = 0
        while True:
            status, state, version = self._observe(ctx)
            if status is StatusState.RUNNING and state is NodeState.ACTIVE and version == self.u.target_version:
                return
            observed = f"/status {status.value}, cluster {state.value if state else 'not listed'}"
            ctx.on_wait(observed)
            errors_seen = errors_seen + 1 if StatusState.ERROR in (status,) or state is NodeState.ERROR else 0
            if errors_seen >= ERROR_POLLS:
                raise NodeFailed(
                    f"{self.u.node.name}: started on {self.u.target_version} but reports ERROR ({observed})",
                    hint=self._hint(),
                )
            if status is StatusState.FIRST_RUN:
                raise NodeFailed(
                    f"{self.u.node.name}: the new installation shows the setup wizard (FIRST_RUN): it does not "
                    "find its home",
                    hint=self._hint(),
                )
            if time.monotonic() > deadline:
                raise WaitTimedOut(
                    f"{self.u.node.name}: not ACTIVE on {self.u.target_version} within "
                    f"{self.u.node.timeouts.start_seconds:.0f} s ({observed})",
                    hint=self._hint(),
                )
            ctx.sleep(POLL_SECONDS)

    def _hint(self) -> str:
        logs = self.u.new("logs/catalina.out")
        link = self.u.paths.current_link
        back = (
            f"to put this node back on its old version: stop it, `sudo ln -sfn {self.u.old_install} {link}`, start it"
            if link
            else "to put this node back, point its service at the old installation and start it"
        )
        return (
            f"look at {logs} and {self.u.node.home}/logs/atlassian-confluence.log on the node; {back}. "
            "The other nodes keep serving; the old installation is untouched."
        )


PRESTAGE_STEPS: tuple[type[Step], ...] = (TransferArchive, ExtractRelease)
ROLLING_STEPS: tuple[type[Step], ...] = (
    StopNode,
    PointHome,
    CopyDriver,
    CarryCustomizations,
    Repoint,
    StartNode,
)


def prune_candidates(releases: tuple[str, ...], keep: int, in_use: str, previous: str, root_dir: str) -> list[str]:
    """Installations beyond `keep`, oldest first by version; never the one in use or the previous one."""
    from confluo.versions import Version

    def version_of(name: str) -> Version | None:
        try:
            return Version.parse(name.removeprefix("atlassian-confluence-"))
        except ValueError:
            return None

    versioned = sorted((v, name) for name in releases if (v := version_of(name)) is not None)
    protected = {posixpath.basename(in_use), posixpath.basename(previous)}
    excess = len(versioned) - keep
    candidates = [posixpath.join(root_dir, name) for _, name in versioned if name not in protected]
    return candidates[: max(0, excess)]


def prune_command(path: str) -> Command:
    return root(RM, "-rf", "--", path)
