"""A donor's installation directory or local home copied to a new node's host while the donor keeps serving: a
`sudo -n tar -c` on the donor into its login user's cache, brought to this machine and sent on, its sha256
checked on the new host, extracted as root into `<path>.confluo-partial`, marked as confluo's copy for the new
node and only then renamed into place. The temporary files go on every way out.

What a running node writes and a new one rebuilds (work/, logs/, temp/; the home's index, journal, caches) is
left out, so the copy does not depend on files changing under it."""

from __future__ import annotations

import contextlib
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from confluo.layout import CLONE_MARKER, STAGING_DIR
from confluo.steps.base import Host, NodeFailed, NodeStep, Preview, StepContext, StepKind
from confluo.transport.base import CommandFailed, CommandResult, TransportError, quote_argv
from confluo.transport.remote import (
    CHOWN,
    MKDIR,
    MV,
    RM,
    TAR,
    Command,
    HostShell,
    Remote,
    contents_not_logged,
    plain,
    root,
    write_file_command,
)

_VERIFY = 'echo "$1  $2" | sha256sum -c --quiet'
_CHANGED_WHILE_READ = ("file changed as we read it", "File removed before we read it")


def read_as_root(remote: HostShell, path: str) -> str | None:
    """A file's text whoever owns it: `sudo -n tar -c` of it, unpacked to stdout here by the login user (tar is
    what sudo grants; nothing is written). None when it is not there."""
    sudo = ("sudo", "-n") if remote.machine.sudo else ()
    argv = (*sudo, TAR, "-cf", "-", "-C", posixpath.dirname(path), posixpath.basename(path))
    line = quote_argv(["bash", "-c", 'set -o pipefail; "$@" 2>/dev/null | tar -xOf -', "read", *argv])
    result = remote.shell(line, check=False, shown=contents_not_logged)
    return result.stdout if result.ok else None


def cache_dir(login_home: str, new_node: str) -> str:
    return posixpath.join(login_home, STAGING_DIR, f"add-{new_node}")


@dataclass(frozen=True)
class CopyTree(NodeStep):
    """One tree from the donor to the new host (the step's node); see the module's docstring."""

    host: Host  # the new node
    donor: Host
    donor_login_home: str
    login_home: str  # the new host's login user's
    source: str  # the donor's tree
    target: str  # where it goes on the new host
    left_out: tuple[str, ...]  # folders of the tree that are not copied
    local_dir: str  # on this machine, where the copy passes through
    owner: str | None  # the whole tree's owner on the new host (the local home's: the Confluence user)
    owned_dirs: tuple[str, ...] = ()  # else these folders, created empty and given to `runtime_owner`
    runtime_owner: str | None = None

    @property
    def _file(self) -> str:
        return f"{self.kind.name.lower()}.tar"

    def _donor_file(self) -> str:
        return posixpath.join(cache_dir(self.donor_login_home, self.node), self._file)

    def _new_file(self) -> str:
        return posixpath.join(cache_dir(self.login_home, self.node), self._file)

    @property
    def _partial(self) -> str:
        return self.target + ".confluo-partial"

    def _pack(self) -> tuple[Command, str]:
        excludes = [f"--exclude=./{folder}" for folder in self.left_out]
        tar = root(TAR, "-cf", "-", "--anchored", *excludes, "-C", self.source, ".")
        return plain(MKDIR, "-p", "-m", "700", posixpath.dirname(self._donor_file())), (
            self.donor.line(tar) + " > " + quote_argv([self._donor_file()])
        )

    def _unpack(self) -> tuple[Command, ...]:
        partial = self._partial
        commands = [
            root(RM, "-rf", "--", partial),
            root(MKDIR, "-p", partial),
            root(TAR, "-xf", self._new_file(), "-C", partial),
        ]
        if self.owned_dirs:
            dirs = [posixpath.join(partial, folder) for folder in self.owned_dirs]
            commands.append(root(MKDIR, "-p", *dirs))
            if self.runtime_owner:
                commands.append(root(CHOWN, "-R", f"{self.runtime_owner}:", *dirs))
        if self.owner:
            commands.append(root(CHOWN, "-R", f"{self.owner}:", partial))
        commands.append(write_file_command(posixpath.join(partial, CLONE_MARKER)))
        commands.append(root(MKDIR, "-p", posixpath.dirname(self.target)))
        return tuple(commands)

    def _place(self) -> tuple[Command, Command]:
        # An empty folder prepared for the node gives way (rm -d removes only an empty one); then one rename.
        return root(RM, "-d", "--", self.target), root(MV, "-T", self._partial, self.target)

    @property
    def _marker_text(self) -> str:
        return f"node={self.node}\nfrom={self.donor.node.name}\n"

    def describe(self) -> Preview:
        mkdir, pack = self._pack()
        new_dir = posixpath.dirname(self._new_file())
        remove_empty, rename = self._place()
        unpack = list(self.host.lines(self._unpack()))
        unpack[-2] += f" <<< {self._marker_text.strip()!r}"
        return Preview(
            commands=(
                f"{self.donor.node.name}: {self.donor.line(mkdir)}",
                f"{self.donor.node.name}: {pack}",
                f"(bring {self.donor.node.name}:{self._donor_file()} to {self.local_dir} here, then send it to "
                f"{self.node}:{self._new_file()}; sha256 checked on {self.node})",
                self.host.line(plain(MKDIR, "-p", "-m", "700", new_dir)),
                *unpack,
                self.host.line(remove_empty) + "   (only if it is an empty folder)",
                self.host.line(rename),
                f"(then the three copies removed: {self.donor.node.name}'s, this machine's, {self.node}'s)",
            ),
        )

    def is_done(self, ctx: StepContext) -> bool:
        marker = read_as_root(ctx.shell, posixpath.join(self.target, CLONE_MARKER)) or ""
        return f"node={self.node}" in marker.splitlines()

    def apply(self, ctx: StepContext) -> dict[str, int]:
        donor = ctx.remote_of(self.donor.node.name)
        local = Path(self.local_dir) / f"{self.node}-{self._file}"
        try:
            digest = self._pack_on_donor(ctx, donor)
            Path(self.local_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
            ctx.on_wait(f"bringing {self.source} from {self.donor.node.name}")
            fetched = donor.transport.download(quote_argv(["cat", "--", self._donor_file()]), str(local), timeout=3600)
            if not fetched.ok:
                raise CommandFailed(fetched)
            size = int(fetched.stdout)
            ctx.shell.run(plain(MKDIR, "-p", "-m", "700", posixpath.dirname(self._new_file())))
            ctx.on_wait(f"sending it to {self.node} ({size} bytes)")
            ctx.shell.transport.upload(str(local), self._new_file(), timeout=3600)
            if not ctx.check(_VERIFY, digest, self._new_file()):
                raise NodeFailed(
                    f"{self.node}: the copy of {self.source} does not have the sha256 it had on {self.donor.node.name}",
                    hint="check the network path and both hosts' disks, then run again",
                )
            self._unpack_and_place(ctx)
        finally:
            self._clean(ctx, donor, local)
        return {"bytes_sent": size}

    def _pack_on_donor(self, ctx: StepContext, donor: Remote) -> str:
        mkdir, pack = self._pack()
        donor.run(mkdir)
        ctx.on_wait(f"packing {self.source} on {self.donor.node.name}")
        result = donor.shell(pack, timeout=3600, check=False)
        if not (result.ok or _only_changed_while_read(result)):
            raise CommandFailed(result)
        summed = donor.shell(quote_argv(["sha256sum", "--", self._donor_file()]), timeout=600)
        return summed.stdout.split()[0]

    def _unpack_and_place(self, ctx: StepContext) -> None:
        *commands, marker, parent = self._unpack()
        ctx.run_all(tuple(commands), timeout=3600)
        ctx.shell.run(marker, stdin=self._marker_text.encode())
        ctx.shell.run(parent)
        remove_empty, rename = self._place()
        if ctx.check('[ -d "$1" ] && [ ! -L "$1" ]', self.target):
            ctx.shell.run(remove_empty)  # refuses a folder that is not empty: nothing is ever written over
        ctx.shell.run(rename)

    def _clean(self, ctx: StepContext, donor: Remote, local: Path) -> None:
        for remote, path in ((donor, self._donor_file()), (ctx.shell, self._new_file())):
            with contextlib.suppress(TransportError):
                remote.run(plain(RM, "-f", "--", path), check=False)
        with contextlib.suppress(OSError):
            os.unlink(local)


def _only_changed_while_read(result: CommandResult) -> bool:
    """tar's exit 1: a file changed while it was read (the donor serves on); anything else is a failure."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return result.exit_status == 1 and all(any(w in line for w in _CHANGED_WHILE_READ) for line in lines)


@dataclass(frozen=True)
class CloneInstall(CopyTree):
    kind = StepKind.CLONE_INSTALL


@dataclass(frozen=True)
class SeedLocalHome(CopyTree):
    kind = StepKind.SEED_HOME
