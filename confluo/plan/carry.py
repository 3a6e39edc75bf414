"""The customization files of every node decided at plan time (confluo/carry), so that `plan` shows each
file's three diffs and refuses on a conflict before anything changes; and the local home check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confluo import configfiles
from confluo.carry.decide import FileCarry, Outcome, Resolution, carry_file
from confluo.carry.merge import Conflict
from confluo.carry.validate import problems
from confluo.inventory import Inventory, Node
from confluo.layout import INIT_PROPERTIES
from confluo.probe.facts import Facts, NodeFacts
from confluo.secrets import mask_secrets
from confluo.steps.configure import CarriedFile

ShellSyntax = Callable[[str], str | None]  # a shell script's syntax error (bash -n), or None


@dataclass(frozen=True)
class _Sources:
    source: str  # the version the nodes run
    target: str
    inventory: Inventory
    facts: Facts
    shell_syntax: ShellSyntax | None


def carry_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    """What is wrong with the inventory's carry settings as such, before any file is looked at."""
    reasons = []
    if facts.base_archive_error:
        reasons.append(f"customizations.base_archive: {facts.base_archive_error}")
    expected = inventory.carry.base_sha256
    base = facts.base_archive
    if base is not None and expected and expected.lower() != base.sha256:
        reasons.append(
            f"customizations.base_archive {base.path}: sha256 is {base.sha256}, the inventory says {expected}"
        )
    for rel in inventory.carry.resolve:
        if rel not in inventory.customizations:
            reasons.append(f"customizations.resolve.{rel}: not one of the customization files")
    return reasons


def node_carries(
    inventory: Inventory, facts: Facts, source: str, shell_syntax: ShellSyntax | None
) -> tuple[dict[str, tuple[CarriedFile, ...]], list[str]]:
    """Every node's carried files and every reason to refuse (conflicts, no base, unreadable, invalid results)."""
    assert facts.archive is not None
    sources = _Sources(source, facts.archive.version, inventory, facts, shell_syntax)
    base = facts.base_archive
    if base is not None and base.version != source:
        return {}, [f"customizations.base_archive is the {base.version} archive, but the nodes run {source}"]
    carried: dict[str, tuple[CarriedFile, ...]] = {}
    reasons: list[str] = []
    for node in inventory.nodes:
        found = facts.for_node(node.name)
        if found.installed_version != source:
            continue  # upgraded already (a resumed run): nothing left to carry
        files = [_carry(sources, found, rel) for rel in inventory.customizations if rel in found.present]
        reasons += [reason for carry in files for reason in _reasons(sources, node, carry, found.not_text)]
        reasons += [
            error for carry in files if carry.refused and (error := facts.resolve_errors.get((node.name, carry.rel)))
        ]
        carried[node.name] = tuple(_planned(sources, carry) for carry in files)
    return carried, reasons


def _carry(sources: _Sources, found: NodeFacts, rel: str) -> FileCarry:
    """The file decided on its own first; the inventory's resolution applies only where that is refused, so a
    resolution written for one release's conflict never overrides a later clean merge."""
    assert sources.facts.archive is not None
    base: str | None = None
    if found.has_stock:
        base = found.stock.get(rel, "")  # kept at extraction; a file the release did not ship is empty
    elif sources.facts.base_archive is not None:
        base = sources.facts.base_archive.stock_files.get(rel, "")
    mine, theirs = found.files.get(rel), sources.facts.archive.stock_files.get(rel)
    carried = carry_file(
        rel, base=base, mine=mine, theirs=theirs, accept_two_way=sources.inventory.carry.accept_two_way
    )
    resolution = _resolution(sources, found.node, rel) if carried.refused else None
    return carry_file(rel, base=base, mine=mine, theirs=theirs, resolution=resolution) if resolution else carried


def _resolution(sources: _Sources, node: str, rel: str) -> Resolution | None:
    value = sources.inventory.carry.resolve.get(rel)
    if value is None:
        return None
    if value == "keep-mine":
        return Resolution("keep-mine")
    if value == "take-release":
        return Resolution("take-release")
    text = sources.facts.resolved.get((node, rel))
    return Resolution("file", value, text) if text is not None else None  # unreadable: reported on its own


def _reasons(sources: _Sources, node: Node, carry: FileCarry, not_text: tuple[str, ...]) -> list[str]:
    where = f"{node.name}: {carry.rel}"
    resolve = f"customizations.resolve.{carry.rel}: keep-mine, take-release or the path of a resolved file"
    if carry.outcome is Outcome.CONFLICT:
        return [f"{where}: {carry.outcome.value}; set {resolve}\n" + _shown_conflicts(sources, carry.conflicts)]
    if carry.outcome is Outcome.NO_BASE:
        return [
            f"{where}: differs from the {sources.target} stock file and there is no stock copy of {sources.source} "
            f"to tell your changes from the release's: set customizations.base_archive to the {sources.source} "
            f"archive, or customizations.accept_two_way: true (yours kept whole), or {resolve}"
        ]
    if carry.outcome is Outcome.UNREAD:
        why = "it is not UTF-8 text" if carry.rel in not_text else "the login user cannot read it"
        fix = "save it as UTF-8" if carry.rel in not_text else "let the login user read it"
        return [
            f"{where}: {why}, so it cannot be merged: {fix}, or set customizations.resolve.{carry.rel}: "
            "keep-mine (copied whole as root; the release's changes to it are lost)"
        ]
    if carry.result is None or not carry.writes:
        return []
    found = problems(carry.rel, carry.mine, carry.result)
    if carry.rel.endswith(".sh") and sources.shell_syntax is not None:
        error = sources.shell_syntax(carry.result)
        found += [f"the result is not valid shell (bash -n): {error}"] if error else []
    return [f"{where}: {problem} ({carry.outcome.value}); nothing was written" for problem in found]


def _shown_conflicts(sources: _Sources, conflicts: tuple[Conflict, ...]) -> str:
    blocks = []
    for number, conflict in enumerate(conflicts, 1):
        sides = (
            (f"old stock ({sources.source})", conflict.base),
            ("yours", conflict.mine),
            (f"the release's ({sources.target})", conflict.theirs),
        )
        lines = [f"  conflict {number} of {len(conflicts)}:"]
        for title, text in sides:
            lines.append(f"    {title}:")
            lines += [f"      | {line}" for line in mask_secrets(text).splitlines() or ["(nothing)"]]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def _planned(sources: _Sources, carry: FileCarry) -> CarriedFile:
    rel, base, mine, theirs = carry.rel, carry.base, carry.mine, carry.theirs
    old, new = f"{sources.source} stock", f"{sources.target} stock"
    parts: list[tuple[str, str]] = []
    if base is not None and mine is not None:
        parts.append(("your changes", configfiles.unified_diff(rel, base, mine, (old, "yours"))))
    if base is not None and theirs is not None:
        parts.append(("the release's changes", configfiles.unified_diff(rel, base, theirs, (old, new))))
    if base is None and mine is not None and theirs is not None:
        parts.append(("yours against the release's", configfiles.unified_diff(rel, theirs, mine, (new, "yours"))))
    result_diff = ""
    if carry.result is not None and carry.writes:
        result_diff = configfiles.unified_diff(rel, theirs or "", carry.result, (new, "what confluo writes"))
    return CarriedFile(
        rel=rel,
        text=carry.result,
        write=carry.writes,
        summary=_summary(carry, parts),
        parts=tuple(parts),
        result_diff=result_diff,
        same_as_old=carry.result is not None and carry.result == mine,
    )


_SHORT = {"your changes": "yours", "the release's changes": "release", "yours against the release's": "yours"}


def _summary(carry: FileCarry, parts: list[tuple[str, str]]) -> str:
    """e.g. `conf/server.xml: merged: your changes and the release's (yours +3 -2, release +1 -1)`."""
    counts = []
    for title, diff in parts:
        added, removed = configfiles.changed_lines(diff)
        counts.append(f"{_SHORT[title]} +{added} -{removed}")
    detail = f" ({', '.join(counts)})" if counts else ""
    if carry.copied_unseen:
        detail = " (copied whole as root, its contents not read)"
    return f"{carry.rel}: {carry.outcome.value}{detail}"


def home_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    """The new installation is pointed at the inventory's home: refused when the running installation uses
    another one, which would bring the node up in the setup wizard on an empty directory."""
    reasons = []
    for node in inventory.nodes:
        found = facts.for_node(node.name)
        text = found.files.get(INIT_PROPERTIES)
        running = configfiles.read_home(text) if text is not None else None
        if running is None or running.rstrip("/ ") == str(node.home).rstrip("/"):
            continue
        reasons.append(
            f"{node.name}: the running installation uses confluence.home={running} ({INIT_PROPERTIES} in "
            f"{found.old_install}), but the inventory's home is {node.home}: correct the inventory's `home`"
        )
    return reasons
