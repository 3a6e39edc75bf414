"""The new installation made the node's own: its local home, the JDBC driver, the administrator's files."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field

from confluo import configfiles
from confluo.layout import INIT_PROPERTIES, WEBINF_LIB
from confluo.steps.base import FileChange, Host, NodeStep, Preview, StepContext, StepKind
from confluo.transport.remote import CP, Command, root, write_file_command


@dataclass(frozen=True)
class PointHome(NodeStep):
    """confluence-init.properties of the new installation names the node's existing local home."""

    kind = StepKind.SET_HOME

    host: Host
    install: str
    stock_text: str  # the file as the release ships it, for the plan's diff

    @property
    def _path(self) -> str:
        return posixpath.join(self.install, INIT_PROPERTIES)

    @property
    def _home(self) -> str:
        return str(self.host.node.home)

    def describe(self) -> Preview:
        diff = configfiles.unified_diff(
            INIT_PROPERTIES, self.stock_text, configfiles.with_home(self.stock_text, self._home)
        )
        return Preview(
            commands=(self.host.line(write_file_command(self._path)) + " <<< (the file below)",),
            files=(FileChange(self._path, diff),),
        )

    def is_done(self, ctx: StepContext) -> bool:
        text = ctx.read(self._path)
        return text is not None and configfiles.read_home(text) == self._home

    def apply(self, ctx: StepContext) -> None:
        # The file that is really there, so its comments are kept even if it differs from the archive's.
        current = ctx.read(self._path)
        content = configfiles.with_home(current if current is not None else self.stock_text, self._home)
        ctx.shell.run(write_file_command(self._path), stdin=content.encode())


@dataclass(frozen=True)
class CopyDriver(NodeStep):
    """MySQL and Oracle drivers are not bundled with Confluence: the old installation's jar goes along."""

    kind = StepKind.COPY_DRIVER

    host: Host
    old_install: str
    new_install: str
    jars: tuple[str, ...]

    def _commands(self) -> tuple[Command, ...]:
        old_lib, new_lib = (posixpath.join(install, WEBINF_LIB) for install in (self.old_install, self.new_install))
        return tuple(root(CP, "-p", "--", posixpath.join(old_lib, jar), new_lib + "/") for jar in self.jars)

    def describe(self) -> Preview:
        return Preview(commands=self.host.lines(self._commands()))

    def is_done(self, ctx: StepContext) -> bool:
        lib = posixpath.join(self.new_install, WEBINF_LIB)
        return all(ctx.check('[ -f "$1" ]', posixpath.join(lib, jar)) for jar in self.jars)

    def apply(self, ctx: StepContext) -> None:
        ctx.run_all(self._commands())


@dataclass(frozen=True)
class CarryCustomizations(NodeStep):
    """Files the administrator changed in the old installation (ports, node name, SSO, ...) go along."""

    kind = StepKind.CARRY

    host: Host
    old_install: str
    new_install: str
    files: tuple[str, ...]  # relative to the installation; the listed ones that exist in the old one
    old_texts: Mapping[str, str] = field(default_factory=dict)  # where the login user could read them
    stock_texts: Mapping[str, str] = field(default_factory=dict)

    def _pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple((posixpath.join(self.old_install, r), posixpath.join(self.new_install, r)) for r in self.files)

    def _commands(self) -> tuple[Command, ...]:
        return tuple(root(CP, "-p", "--", old, new) for old, new in self._pairs())

    def describe(self) -> Preview:
        files = tuple(FileChange(posixpath.join(self.new_install, rel), self._diff(rel)) for rel in self.files)
        return Preview(commands=self.host.lines(self._commands()), files=files)

    def _diff(self, rel: str) -> str:
        if rel not in self.old_texts:
            return "(the login user cannot read it: copied as root, unseen)\n"
        return configfiles.unified_diff(rel, self.stock_texts.get(rel, ""), self.old_texts[rel])

    def is_done(self, ctx: StepContext) -> bool:
        return all(ctx.check('cmp -s -- "$1" "$2"', old, new) for old, new in self._pairs())

    def apply(self, ctx: StepContext) -> None:
        ctx.run_all(self._commands())
