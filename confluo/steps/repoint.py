"""The service pointed at an installation: an atomic swap of the `current` symlink, or the init.d script /
systemd unit rewritten to name it. `reversed()` is the same step back, for a rollback."""

from __future__ import annotations

from dataclasses import dataclass, replace

from confluo import configfiles
from confluo.steps.base import FileChange, Host, NodeFailed, NodeStep, Preview, StepContext, StepKind
from confluo.transport.base import quote_argv
from confluo.transport.remote import LN, MV, SYSTEMCTL, Command, root, write_file_command


@dataclass(frozen=True)
class Repoint(NodeStep):
    kind = StepKind.REPOINT

    host: Host
    from_install: str
    to_install: str
    link: str | None  # <base>/current in the symlink layout; otherwise the service definition is rewritten
    definition_text: str = ""  # the init.d script / unit as the plan found it, for the plan's diff

    def reversed(self) -> Repoint:
        back = configfiles.repoint(self.definition_text, self.from_install, self.to_install)
        return replace(self, from_install=self.to_install, to_install=self.from_install, definition_text=back)

    @property
    def _definition(self) -> str:
        definition = self.host.node.service.definition
        assert definition is not None, "the plain layout always names its service definition"
        return str(definition)

    def _link_commands(self) -> tuple[Command, ...]:
        assert self.link is not None
        temporary = self.link + ".confluo-new"
        # mv -T renames over the old link in one step: `current` never stops existing.
        return (root(LN, "-sfn", self.to_install, temporary), root(MV, "-T", temporary, self.link))

    def _rewrite_commands(self) -> tuple[Command, ...]:
        commands = [write_file_command(self._definition)]
        if self.host.node.service.kind == "systemd":
            commands.append(root(SYSTEMCTL, "daemon-reload"))
        return tuple(commands)

    def describe(self) -> Preview:
        if self.link is not None:
            return Preview(commands=self.host.lines(self._link_commands()))
        after = configfiles.repoint(self.definition_text, self.from_install, self.to_install)
        lines = list(self.host.lines(self._rewrite_commands()))
        lines[0] += " <<< (the file below)"
        diff = configfiles.unified_diff(self._definition, self.definition_text, after)
        return Preview(commands=tuple(lines), files=(FileChange(self._definition, diff),))

    def is_done(self, ctx: StepContext) -> bool:
        if self.link is not None:
            result = ctx.shell.shell(quote_argv(["readlink", "-f", "--", self.link]), check=False)
            return result.stdout.strip() == self.to_install
        return configfiles.names_path(ctx.read(self._definition) or "", self.to_install)

    def apply(self, ctx: StepContext) -> None:
        if self.link is not None:
            ctx.run_all(self._link_commands())
            return
        text = ctx.read(self._definition) or ""
        if not configfiles.names_path(text, self.from_install):
            raise NodeFailed(
                f"{self.node}: {self._definition} does not name {self.from_install}; confluo cannot tell how to "
                "repoint it",
                hint=f"point the service at {self.to_install} by hand, then run confluo again",
            )
        write, *after = self._rewrite_commands()
        ctx.shell.run(write, stdin=configfiles.repoint(text, self.from_install, self.to_install).encode())
        ctx.run_all(tuple(after))
