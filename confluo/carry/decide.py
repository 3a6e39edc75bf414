"""What is written for one customization file, from its three versions and the inventory's resolution."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from confluo.carry.merge import Conflict, merge

ResolutionKind = Literal["keep-mine", "take-release", "file"]
XML_SUFFIXES = (".xml",)


class Outcome(enum.Enum):
    """How a file's result came about; the value is what the plan says."""

    THEIRS = "not changed by you: the release's file as shipped"
    MINE = "yours kept: the release did not change it"
    SAME = "the same change on both sides"
    MERGED = "merged: your changes and the release's"
    NOT_SHIPPED = "the release does not ship it: yours kept"
    CONFLICT = "CONFLICT: you and the release changed the same lines"
    NO_BASE = "no stock copy of the release it came from: confluo cannot tell your changes from the release's"
    TWO_WAY = "two-way (customizations.accept_two_way): yours kept whole, the release's changes to it are lost"
    UNREAD = "the login user cannot read it"
    KEPT_MINE = "resolved in the inventory: yours kept whole"
    TOOK_RELEASE = "resolved in the inventory: the release's file as shipped"
    RESOLVED_FILE = "resolved in the inventory: your resolved file"


REFUSED = frozenset({Outcome.CONFLICT, Outcome.NO_BASE, Outcome.UNREAD})


@dataclass(frozen=True)
class Resolution:
    """The administrator's decision for one file (customizations.resolve)."""

    kind: ResolutionKind
    source: str | None = None  # the resolved file's path, for kind "file"
    text: str | None = None  # its content


@dataclass(frozen=True)
class FileCarry:
    """One file's three inputs and what becomes of it. `result` None: nothing can be written (refused), or,
    for an unread file kept whole, it is copied as root."""

    rel: str
    outcome: Outcome
    base: str | None
    mine: str | None
    theirs: str | None
    result: str | None
    conflicts: tuple[Conflict, ...] = ()

    @property
    def refused(self) -> bool:
        return self.outcome in REFUSED

    @property
    def copied_unseen(self) -> bool:
        """Copied whole as root without confluo reading it (unreadable to the login user, or not text)."""
        return self.outcome in (Outcome.KEPT_MINE, Outcome.NOT_SHIPPED) and self.mine is None

    @property
    def writes(self) -> bool:
        """The new installation's file must change: it is not already the release's stock file."""
        return self.copied_unseen or (self.result is not None and self.result != self.theirs)


def carry_file(
    rel: str,
    *,
    base: str | None,
    mine: str | None,
    theirs: str | None,
    resolution: Resolution | None = None,
    accept_two_way: bool = False,
) -> FileCarry:
    """base None: no stock copy of the old release is known. mine None: the login user could not read it.
    theirs None: the new release does not ship the file (a keystore in extra_files): there is nothing to
    merge, so it is copied whole even when confluo cannot read it."""

    def outcome(kind: Outcome, result: str | None, conflicts: tuple[Conflict, ...] = ()) -> FileCarry:
        return FileCarry(rel, kind, base, mine, theirs, result, conflicts)

    if resolution is not None:
        if resolution.kind == "keep-mine":
            return outcome(Outcome.KEPT_MINE, mine)
        if resolution.kind == "take-release":
            return outcome(Outcome.TOOK_RELEASE, theirs if theirs is not None else mine)
        return outcome(Outcome.RESOLVED_FILE, resolution.text)
    if theirs is None:
        return outcome(Outcome.NOT_SHIPPED, mine)
    if mine is None:
        return outcome(Outcome.UNREAD, None)
    if mine == theirs:
        return outcome(Outcome.THEIRS if mine == base else Outcome.SAME, theirs)
    if base is None:
        return outcome(Outcome.TWO_WAY, mine) if accept_two_way else outcome(Outcome.NO_BASE, None)
    if mine == base:
        return outcome(Outcome.THEIRS, theirs)
    if theirs == base:
        return outcome(Outcome.MINE, mine)
    merged = merge(base, mine, theirs, xml=rel.endswith(XML_SUFFIXES))
    if merged.text is None:
        return outcome(Outcome.CONFLICT, None, merged.conflicts)
    return outcome(Outcome.MERGED, merged.text)
