"""The three-way merge itself: merge3 over lines, and for XML over tokens in which every attribute of an
active start tag is its own token, so that two edits of one Connector's different attributes merge cleanly.

Comments (the commented templates of server.xml) stay lines: a template the administrator filled in merges as
text, and a real overlap is a conflict, never a guess. Joining the tokens gives back the text byte for byte.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from merge3 import Merge3

_ATTRIBUTE = r"""\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*')"""
_MARKUP = re.compile(
    rf"""(?P<comment><!--.*?-->)|(?P<other><[!?].*?>)|(?P<tag><[A-Za-z_][\w:.-]*(?:{_ATTRIBUTE})*\s*/?>)""",
    re.DOTALL,
)
_TAG_PARTS = re.compile(rf"^(<[A-Za-z_][\w:.-]*)|({_ATTRIBUTE})|(\s*/?>)$")
_ONE_ATTRIBUTE = re.compile(r"""\s+(?P<name>[\w:.-]+)\s*=\s*(?P<value>"[^"]*"|'[^']*')""")


@dataclass(frozen=True)
class Conflict:
    """One region both sides changed differently: the old stock text, yours, the release's."""

    base: str
    mine: str
    theirs: str


@dataclass(frozen=True)
class Merged:
    text: str | None  # None when there is a conflict
    conflicts: tuple[Conflict, ...] = ()


def lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def xml_tokens(text: str) -> list[str]:
    """Lines, but each active start tag split into its name, one token per attribute (with the blanks before
    it), and its end."""
    tokens: list[str] = []
    position = 0
    for match in _MARKUP.finditer(text):
        tokens += lines(text[position : match.start()])
        if match.lastgroup == "tag":
            tokens += [part.group(0) for part in _TAG_PARTS.finditer(match.group(0))]
        else:
            tokens += lines(match.group(0))
        position = match.end()
    return tokens + lines(text[position:])


class _Matcher:
    """difflib's matcher without its "popular element" heuristic, which treats frequent tokens (a blank line,
    `debug="0"`) as junk and so misaligns long files."""

    def __init__(
        self,
        isjunk: Callable[[str], bool] | None = None,
        a: Sequence[str] = (),
        b: Sequence[str] = (),
        autojunk: bool = False,
    ) -> None:
        self._matcher = difflib.SequenceMatcher(isjunk, a, b, autojunk=False)

    def get_matching_blocks(self) -> list[tuple[int, int, int]]:
        return [(block.a, block.b, block.size) for block in self._matcher.get_matching_blocks()]


def merge(base: str, mine: str, theirs: str, *, xml: bool) -> Merged:
    split = xml_tokens if xml else lines
    merger: Merge3[str] = Merge3(split(base), split(mine), split(theirs), sequence_matcher=_Matcher)
    out: list[str] = []
    conflicts: list[Conflict] = []
    for group in merger.merge_groups():
        if group[0] != "conflict":
            out += group[1]
            continue
        _, base_part, mine_part, theirs_part = group
        by_name = _merge_attributes(base_part, mine_part, theirs_part) if xml else None
        if by_name is not None:
            out += by_name
        else:
            conflicts.append(Conflict("".join(base_part), "".join(mine_part), "".join(theirs_part)))
    return Merged(None if conflicts else "".join(out), tuple(conflicts))


def _attributes(tokens: Sequence[str]) -> dict[str, tuple[str, str]] | None:
    """name -> (value, token), when every token is one attribute of a start tag; else None."""
    found: dict[str, tuple[str, str]] = {}
    for token in tokens:
        match = _ONE_ATTRIBUTE.fullmatch(token)
        if match is None or match["name"] in found:
            return None
        found[match["name"]] = (match["value"][1:-1], token)
    return found


def _merge_attributes(base: Sequence[str], mine: Sequence[str], theirs: Sequence[str]) -> list[str] | None:
    """A conflict region made only of attributes of one tag, merged attribute by attribute: a change on one
    side wins, the same change on both is taken once, different changes of one attribute stay a conflict."""
    old, yours, release = _attributes(base), _attributes(mine), _attributes(theirs)
    if old is None or yours is None or release is None:
        return None
    sides = (old, yours, release)
    names = list(release) + [name for name in yours if name not in release]
    out: list[str] = []
    for name in dict.fromkeys([*names, *old]):
        base_value, mine_value, theirs_value = (side.get(name, (None, ""))[0] for side in sides)
        if mine_value == base_value:
            chosen = release.get(name)
        elif theirs_value == base_value or mine_value == theirs_value:
            chosen = yours.get(name)
        else:
            return None
        if chosen is not None:
            out.append(chosen[1])
    return out
