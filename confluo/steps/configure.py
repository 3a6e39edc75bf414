"""The new installation made the node's own: its local home, the JDBC driver, the administrator's files
(merged with the release's at plan time: confluo/carry)."""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

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
class CarriedFile:
    """One customization file as the plan decided it: the text written into the new installation (None: copied
    whole as root, unseen), and how the plan explains it."""

    rel: str
    text: str | None
    write: bool  # False: the new installation's stock file stays as shipped
    summary: str
    parts: tuple[tuple[str, str], ...] = ()  # (title, masked diff)
    result_diff: str = ""  # the release's file -> what is written, masked
    same_as_old: bool = False  # the text is the old installation's file unchanged: a plain copy does it

    @property
    def sha256(self) -> str:
        return hashlib.sha256((self.text or "").encode()).hexdigest()


@dataclass(frozen=True)
class CarryCustomizations(NodeStep):
    """The administrator's files, merged with the release's (three ways, decided at plan time), go into the new
    installation: copied first so that owner and mode follow the old file, then written with the merged text."""

    kind = StepKind.CARRY
    _SAME_SHA = '[ -r "$2" ] && echo "$1  $2" | sha256sum -c --quiet'

    host: Host
    old_install: str
    new_install: str
    files: tuple[CarriedFile, ...] = ()

    def _paths(self, rel: str) -> tuple[str, str]:
        return posixpath.join(self.old_install, rel), posixpath.join(self.new_install, rel)

    def _commands(self, carried: CarriedFile) -> tuple[Command, ...]:
        old, new = self._paths(carried.rel)
        copy = root(CP, "-p", "--", old, new)
        return (copy,) if carried.text is None or carried.same_as_old else (copy, write_file_command(new))

    def _written(self) -> tuple[CarriedFile, ...]:
        return tuple(carried for carried in self.files if carried.write)

    def describe(self) -> Preview:
        commands = []
        for carried in self._written():
            lines = self.host.lines(self._commands(carried))
            commands += [lines[0], *(line + " <<< (the result below)" for line in lines[1:])]
        files = tuple(
            FileChange(posixpath.join(self.new_install, c.rel), c.result_diff, c.summary, c.parts) for c in self.files
        )
        return Preview(commands=tuple(commands), files=files)

    def _is_carried(self, ctx: StepContext, carried: CarriedFile) -> bool:
        old, new = self._paths(carried.rel)
        if carried.text is None or carried.same_as_old:
            return ctx.check('cmp -s -- "$1" "$2"', old, new)
        return ctx.check(self._SAME_SHA, carried.sha256, new)

    def is_done(self, ctx: StepContext) -> bool:
        return all(self._is_carried(ctx, carried) for carried in self._written())

    def apply(self, ctx: StepContext) -> None:
        for carried in self._written():
            copy, *write = self._commands(carried)
            ctx.shell.run(copy)
            for command in write:  # the merged text on stdin: never on a command line, never in the log
                ctx.shell.run(command, stdin=(carried.text or "").encode())
