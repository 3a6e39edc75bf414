"""Pre-staging, on every node in parallel while all still serve: the archive sent and verified, the release
extracted beside the old one. And, after the upgrade, old installations pruned."""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

from confluo.layout import POM_PROPERTIES, RUNTIME_DIRS, STOCK_DIR
from confluo.steps.base import Applied, Host, NodeFailed, NodeStep, Preview, StepContext, StepKind
from confluo.transport.base import quote_argv
from confluo.transport.remote import CHOWN, CP, MKDIR, MV, RM, TAR, Command, plain, root
from confluo.versions import Version


@dataclass(frozen=True)
class TransferArchive(NodeStep):
    """Sent over the open SSH connection into `<staged>.part`, then verified as it lies on the node's disk and
    renamed into place. A `.part` left by an interrupted run is continued from its size when its bytes are the
    archive's first bytes (sha256 of that prefix, on the node and here); otherwise it is sent again whole.

    Hashing while receiving (`tee | sha256sum`) was measured slower on the lab (6.8 s against 5.6 s per node for
    700 MiB, bench/prestage.py) and checks only the stream, not what was written: the file is read back instead.
    """

    kind = StepKind.TRANSFER
    _VERIFY = '[ -f "$2" ] && echo "$1  $2" | sha256sum -c --quiet'
    _PART_SIZE = '[ -f "$1" ] && stat -c %s -- "$1"'
    _PREFIX_SHA256 = 'head -c "$2" -- "$1" | sha256sum'

    host: Host
    local_archive: str
    sha256: str
    size: int
    staged: str
    shared: bool  # into the shared home, read by every node: the group may read it

    @property
    def partial(self) -> str:
        return self.staged + ".part"

    def _commands(self) -> tuple[Command, Command, Command]:
        return (
            plain(MKDIR, "-p", "-m", "750" if self.shared else "700", posixpath.dirname(self.staged)),
            plain("bash", "-c", self._VERIFY, "verify", self.sha256, self.partial),
            plain(MV, "-f", self.partial, self.staged),
        )

    def describe(self) -> Preview:
        mkdir, verify, move = self.host.lines(self._commands())
        sending = (
            f"(send {self.local_archive}, {self.size} bytes, into {self.partial}; a partial one there that is "
            "the archive's beginning is continued)"
        )
        return Preview(commands=(mkdir, sending, verify, move))

    def is_done(self, ctx: StepContext) -> bool:
        return ctx.check(self._VERIFY, self.sha256, self.staged)

    def apply(self, ctx: StepContext) -> Applied:
        mkdir, verify, move = self._commands()
        ctx.shell.run(mkdir)
        offset = self._continuable_bytes(ctx)
        if offset:
            ctx.on_wait(f"continuing {self.partial} from byte {offset} of {self.size}")
        sent = ctx.shell.transport.upload(self.local_archive, self.partial, timeout=3600, offset=offset)
        if not ctx.shell.run(verify, timeout=600, check=False).ok:
            ctx.shell.run(plain(RM, "-f", self.partial), check=False)
            raise NodeFailed(
                f"{self.node}: the archive on the node does not have sha256 {self.sha256}; the partial file was "
                "removed",
                hint="check the network path and the node's disk, then run again",
            )
        ctx.shell.run(move)
        return {"bytes_sent": sent, "continued_from": offset}

    def _continuable_bytes(self, ctx: StepContext) -> int:
        """How many bytes of a `.part` already there are the archive's own first bytes (0: send it all)."""
        found = ctx.shell.shell(quote_argv(["bash", "-c", self._PART_SIZE, "part-size", self.partial]), check=False)
        held = int(found.stdout.strip()) if found.ok and found.stdout.strip().isdigit() else 0
        if not 0 < held <= self.size:
            return 0
        line = quote_argv(["bash", "-c", self._PREFIX_SHA256, "part-sha256", self.partial, str(held)])
        remote = ctx.shell.shell(line, timeout=600, check=False)
        expected = self.sha256 if held == self.size else prefix_sha256(self.local_archive, held)
        if remote.ok and remote.stdout.split()[:1] == [expected]:
            return held
        ctx.on_wait(f"{self.partial} is not this archive's beginning: sending it again from the start")
        return 0


def prefix_sha256(path: str, length: int) -> str:
    """sha256 of a local file's first `length` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while length > 0 and (block := handle.read(min(length, 1 << 20))):
            digest.update(block)
            length -= len(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ExtractRelease(NodeStep):
    """Into a new directory beside the old one, never over it; renamed into place only when complete."""

    kind = StepKind.EXTRACT

    host: Host
    staged: str
    install: str
    version: str
    stock_files: tuple[str, ...] = ()  # customizable files the archive ships: a pristine copy is kept of each

    def _commands(self) -> tuple[Command, ...]:
        partial = self.install + ".confluo-partial"
        commands = [
            root(RM, "-rf", "--", partial),
            root(MKDIR, "-p", partial),
            root(TAR, "-xzf", self.staged, "-C", partial, "--strip-components=1", "--no-same-owner"),
            *_pristine_copies(partial, self.stock_files),
        ]
        run_as = self.host.node.run_as
        if run_as:
            runtime_dirs = [posixpath.join(partial, d) for d in RUNTIME_DIRS]
            commands.append(root(MKDIR, "-p", *runtime_dirs))
            commands.append(root(CHOWN, "-R", f"{run_as}:", *runtime_dirs))
        commands.append(root(MV, "-T", partial, self.install))
        return tuple(commands)

    def describe(self) -> Preview:
        return Preview(commands=self.host.lines(self._commands()))

    def is_done(self, ctx: StepContext) -> bool:
        return ctx.check('grep -qx "version=$1" "$2"', self.version, posixpath.join(self.install, POM_PROPERTIES))

    def apply(self, ctx: StepContext) -> None:
        if ctx.check('[ -e "$1" ]', self.install):
            raise NodeFailed(
                f"{self.node}: {self.install} exists but is not a complete {self.version} installation; confluo "
                "will not write over it",
                hint="move it aside (it may hold something of value), then run again",
            )
        ctx.run_all(self._commands(), timeout=1800)


def _pristine_copies(install: str, files: tuple[str, ...]) -> list[Command]:
    """The release's stock customizable files, kept in <install>/.confluo/stock/: the next upgrade's base for
    its three-way merge, long after the archive is gone."""
    if not files:
        return []
    stock = posixpath.join(install, STOCK_DIR)
    folders = sorted({posixpath.dirname(posixpath.join(stock, rel)) for rel in files})
    copies = [root(CP, "-p", "--", posixpath.join(install, rel), posixpath.join(stock, rel)) for rel in files]
    return [root(MKDIR, "-p", *folders), *copies]


@dataclass(frozen=True)
class PruneReleases(NodeStep):
    """Old installations beyond keep_releases; never the one in use or the previous one (chosen at plan time)."""

    kind = StepKind.PRUNE

    host: Host
    paths: tuple[str, ...]

    def _commands(self) -> tuple[Command, ...]:
        return tuple(root(RM, "-rf", "--", path) for path in self.paths)

    def describe(self) -> Preview:
        return Preview(commands=self.host.lines(self._commands()))

    def is_done(self, ctx: StepContext) -> bool:
        return not any(ctx.check('[ -e "$1" ]', path) for path in self.paths)

    def apply(self, ctx: StepContext) -> None:
        for command in self._commands():
            ctx.shell.run(command, check=False)

    def verify(self, ctx: StepContext) -> None:
        """The cluster is upgraded by now: a directory that could not be removed is in the log, not a failure."""


def prune_candidates(releases: tuple[str, ...], keep: int, in_use: str, previous: str, root_dir: str) -> list[str]:
    """Installations beyond `keep`, oldest first by version; never the one in use or the previous one."""

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
