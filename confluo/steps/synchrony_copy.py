"""The new synchrony-standalone.jar, from the local home of the first Confluence node that runs the target (where
Confluence puts the jar of its own release) to a Synchrony node, through this machine: read over the source's SSH
connection, written over the Synchrony node's, its sha256 checked on the far side, and staged beside the live jar
(renamed into place only once whole). The jar's sha256 is read from the source each time: a Synchrony node
already on that jar is left alone.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from confluo.inventory import SYNCHRONY_JAR
from confluo.steps.base import Applied, Host, NodeFailed, Preview, StepContext, StepKind
from confluo.steps.synchrony import JarPaths, SynchronyHost, SynchronyStep, sha256s
from confluo.transport.base import quote_argv
from confluo.transport.remote import CP, MKDIR, MV, RM, Command, Remote, plain, root

# On the source node: $1 sha or cat, $2 the jar, then the command that copies as root (or as the login user):
# a local home the login user may not read is copied into a temporary file of its own first (cp onto a file that
# exists keeps its owner, so the login user can read and remove it).
_SOURCE = r"""set -o pipefail
mode=$1; jar=$2; shift 2
out() { if [ "$mode" = sha ]; then sha256sum -- "$1" | cut -d' ' -f1; else cat -- "$1"; fi; }
if [ -r "$jar" ]; then out "$jar"; exit; fi
copy=$(mktemp) || exit 1
trap 'rm -f -- "$copy"' EXIT
"$@" -- "$jar" "$copy" && out "$copy"
"""
_VERIFY = 'echo "$1  $2" | sha256sum -c --quiet'


@dataclass(frozen=True)
class CopySynchronyJar(SynchronyStep):
    """Done when the node runs the source's jar already (and nothing stale is staged), or has it staged."""

    kind = StepKind.SYNCHRONY_COPY

    host: SynchronyHost
    paths: JarPaths
    source: Host  # the Confluence node whose local home holds the new jar
    staging: str  # where the jar lands in the Synchrony node's login home before it is copied into place

    @property
    def peer(self) -> str:
        return self.source.node.name

    @property
    def source_jar(self) -> str:
        return posixpath.join(str(self.source.node.home), SYNCHRONY_JAR)

    def _source_line(self, mode: str) -> str:
        copy = shlex.split(root(CP).line(self.source.node, self.source.login_user))
        return quote_argv(["bash", "-c", _SOURCE, "confluo-jar", mode, self.source_jar, *copy])

    def _place(self, sha256: str) -> tuple[Command, ...]:
        paths = self.paths
        return (
            # cp -p of the live jar, then the new bytes onto it: the copy keeps the live jar's owner and mode.
            root(CP, "-p", "--", paths.live, paths.part),
            root(CP, "--", self.staging, paths.part),
            plain("bash", "-c", _VERIFY, "verify", sha256, paths.part),
            root(MV, "-f", "--", paths.part, paths.staged),
        )

    def describe(self) -> Preview:
        mkdir = self.host.line(plain(MKDIR, "-p", "-m", "700", posixpath.dirname(self.staging)))
        place = self.host.lines(self._place("<its sha256>"))
        return Preview(
            commands=(
                f"(on {self.peer}: read {self.source_jar} and its sha256, as the login user, or through a "
                "temporary copy made with `cp` as root where the login user may not read it)",
                f"(here: into a temporary file, its sha256 checked; then sent into {self.staging})",
                mkdir,
                *place,
                self.host.line(plain(RM, "-f", "--", self.staging)),
            ),
            waits=(f"skipped when {self.paths.live} already has the sha256 of {self.peer}'s jar",),
        )

    def _source_sha256(self, ctx: StepContext) -> str:
        result = ctx.source.shell(self._source_line("sha"), timeout=600, check=False)
        value = result.stdout.strip()
        if not result.ok or len(value) != 64:
            raise NodeFailed(
                f"{self.peer}: cannot read {self.source_jar}: {result.tail(3) or f'exit {result.exit_status}'}",
                hint=f"Confluence puts the jar of its release in its local home when it starts: look at {self.peer}",
            )
        return value

    def is_done(self, ctx: StepContext) -> bool:
        want = self._source_sha256(ctx)
        live, staged = sha256s(ctx, self.paths.live, self.paths.staged)
        return (live == want and staged is None) or (staged == want and live != want)

    def apply(self, ctx: StepContext) -> Applied:
        want = self._source_sha256(ctx)
        (live,) = sha256s(ctx, self.paths.live)
        if live == want:  # on the new jar already: a staged one is stale, and swapping it in would lose the backup
            ctx.shell.run(root(RM, "-f", "--", self.paths.staged))
            return {}
        with tempfile.TemporaryDirectory(prefix="confluo-synchrony-") as scratch:
            local = str(Path(scratch) / SYNCHRONY_JAR)
            size = _read_into(ctx.source, self._source_line("cat"), local, want)
            ctx.shell.run(plain(MKDIR, "-p", "-m", "700", posixpath.dirname(self.staging)))
            ctx.shell.transport.upload(local, self.staging, timeout=3600)
        copy, replace, verify, move = self._place(want)
        ctx.run_all((copy, replace))
        if not ctx.shell.run(verify, timeout=600, check=False).ok:
            ctx.shell.run(root(RM, "-f", "--", self.paths.part), check=False)
            raise NodeFailed(
                f"{self.node}: the jar written to {self.paths.part} does not have sha256 {want}; it was removed",
                hint="check the node's disk and the network, then run again",
            )
        ctx.run_all((move, plain(RM, "-f", "--", self.staging)))
        return {"jar_bytes": size}


def _read_into(source: Remote, line: str, local: str, want: str) -> int:
    """The jar's bytes into `local` here, checked against the sha256 the source gave before."""
    source.download(line, local, timeout=3600)
    with open(local, "rb") as handle:
        got = hashlib.file_digest(handle, "sha256").hexdigest()
    if got != want:
        raise NodeFailed(
            f"{source.node.name}: the jar read has sha256 {got}, not {want}: it changed while it was read",
            hint="run again once Confluence on that node has finished starting",
        )
    return Path(local).stat().st_size
