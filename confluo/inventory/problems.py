"""Problems found in an inventory, and how values and locations are shown in them.

Every value a message shows goes through `shown` or `describe`: control characters and line breaks come out
escaped (a key holding a newline cannot forge an extra line of output) and a huge value is cut short (a
100 000-character key stays a short line).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Loc = tuple[str | int, ...]
Mark = tuple[int, int]  # line and column, both counted from 1

SHOWN_CHARACTERS = 60  # a longer value is shown as its first characters and its length
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the inventory, tied to where it is in the file.

    `at` says which position of `loc` the line and column point at: the value written there, its key (an unknown
    or repeated key), or the mapping that should hold it (a missing key).
    """

    message: str
    loc: Loc | None = None  # None: not in the file (e.g. --to)
    at: Literal["value", "key", "parent"] = "value"
    mark: Mark | None = None  # set when the position is known without looking `loc` up


def has_control_characters(text: str) -> bool:
    """Control characters, line and paragraph separators, and invisible format characters (bidi overrides)."""
    return any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in text)


def shown(text: str) -> str:
    """A string as a message quotes it: escaped like a Python literal, and cut short when long."""
    if len(text) <= SHOWN_CHARACTERS:
        return repr(text)
    return f"{text[: SHOWN_CHARACTERS - 20]!r}… ({len(text)} characters)"


def describe(value: object) -> str:
    """A value from the YAML file in a message: `got 'abc'`, `got true`, `got a mapping`."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def format_loc(loc: Loc) -> str:
    """`nodes[2].ssh.port`; a key that is not a plain name is quoted: `nodes[0]['a\\nb']`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part) and len(part) <= SHOWN_CHARACTERS:
            text += f".{part}" if text else part
        else:
            text += f"[{shown(part)}]"
    return text


def suggestion(key: str, allowed: Sequence[str]) -> str:
    """` (did you mean 'password_env'?)` for a near miss; nothing when no known key is close."""
    if len(key) > 2 * max((len(name) for name in allowed), default=0):
        return ""  # far too long to be a typo, and difflib is quadratic in the length
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def render(problem: Problem, values: Mapping[Loc, Mark], keys: Mapping[Loc, Mark]) -> str:
    """`line 12, column 7: nodes[2].ssh.port: expected an integer, got 'abc'`."""
    where = format_loc(problem.loc) if problem.loc else ""
    mark = problem.mark or (_mark_of(problem, values, keys) if problem.loc else None)
    text = f"{where}: {problem.message}" if where else problem.message
    return f"line {mark[0]}, column {mark[1]}: {text}" if mark else text


def _mark_of(problem: Problem, values: Mapping[Loc, Mark], keys: Mapping[Loc, Mark]) -> Mark | None:
    loc = problem.loc or ()
    if problem.at == "key" and loc in keys:
        return keys[loc]
    if problem.at == "value" and loc in values:
        return values[loc]
    # A missing key, or a value that came from elsewhere: the innermost mapping that is written.
    for end in range(len(loc) - 1, 0, -1):
        if loc[:end] in values:
            return values[loc[:end]]
    return None
