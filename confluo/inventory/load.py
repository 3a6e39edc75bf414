"""Reading the inventory file: bounded, strict YAML into plain data, with the position of every key and value.

Bounded: only a regular file is opened (a FIFO or /dev/zero cannot hang or exhaust it), at most MAX_BYTES are
read, nesting stops at MAX_DEPTH and aliases may not expand past MAX_VALUES values (no "billion laughs" and no
merge-key fan-out). Strict: every key written twice is reported, not only the first; a plain scalar that YAML 1.1
and 1.2 read differently (`022`, `yes`, `on`, `1_000`, `1:30`) is kept as its text with a note, so a field that
wants a number or a boolean refuses it with an explanation, and a field that wants text gets what was written.
Only the core tags are accepted.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from confluo.inventory.problems import Loc, Mark, Problem, describe

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 16
MAX_VALUES = 50_000
MAX_NUMBER_DIGITS = 30

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"

_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")
_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_OCTAL_1_1 = re.compile(r"[-+]?0[0-7]+")
_FLOAT_1_2 = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL_FLOATS = {".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}


class InventoryReadError(Exception):
    """The file could not be read or parsed at all; `problems` says why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = problems


@dataclass
class Document:
    """The file's data (mappings, lists, str, int, float, bool, None), and where each part of it is written."""

    data: object
    values: dict[Loc, Mark] = field(default_factory=dict)  # where the value at a location starts
    keys: dict[Loc, Mark] = field(default_factory=dict)  # where the key of a mapping entry is written
    notes: dict[Loc, str] = field(default_factory=dict)  # why a plain scalar was kept as text
    problems: list[Problem] = field(default_factory=list)  # found while reading; reading went on


def read_document(path: Path) -> Document:
    """The YAML document in `path`; raises InventoryReadError when it cannot be read or parsed."""
    return parse_document(read_text(path))


def read_text(path: Path) -> str:
    data = read_regular_file(path, MAX_BYTES, "the inventory")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _position(data[: error.start].decode("utf-8", "replace"), error.start)
        raise InventoryReadError(
            [Problem(f"not a UTF-8 text file (byte {data[error.start]:#04x})", mark=(line, column))]
        ) from None


def read_regular_file(path: Path, limit: int, what: str) -> bytes:
    """At most `limit` bytes of a regular file; anything else is refused before a byte is read.

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer; fstat then refuses it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise InventoryReadError([Problem(f"cannot read {what}: {error.strerror}")]) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # checked before fdopen, which refuses a directory with its own error
        os.close(fd)
        raise InventoryReadError([Problem(f"cannot read {what}: {file_kind(mode)}, not a regular file")])
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as error:
            raise InventoryReadError([Problem(f"cannot read {what}: {error.strerror}")]) from None
    if len(data) > limit:
        raise InventoryReadError([Problem(f"{what} is larger than {limit // 1024} KiB; it cannot be an inventory")])
    return data


def file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a plain file")


def parse_document(text: str) -> Document:
    try:
        root = yaml.compose(text, Loader=_BoundedLoader)
    except yaml.reader.ReaderError as error:
        line, column = _position(text, error.position)
        code = error.character if isinstance(error.character, int) else ord(error.character)
        problem = f"not valid YAML: the character {chr(code)!r} (U+{code:04X}) is not allowed"
        raise InventoryReadError([Problem(problem, mark=(line, column))]) from None
    except yaml.MarkedYAMLError as error:
        raise InventoryReadError([_yaml_problem(error)]) from None
    except yaml.YAMLError as error:
        raise InventoryReadError([Problem(f"not valid YAML: {_escaped(str(error))}")]) from None
    document = Document(data=None)
    if root is not None:
        builder = _Builder(document)
        try:
            document.data = builder.build(root, ())
        except _TooLarge as error:
            raise InventoryReadError([Problem(error.message, mark=error.mark)]) from None
    return document


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe reader, scanner, parser and resolver; its composer stops at MAX_DEPTH levels."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooLarge(Exception):
    def __init__(self, message: str, mark: Mark) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Builder:
    """Turns composed YAML nodes into plain data, recording positions and every problem on the way."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self._budget = MAX_VALUES
        self._open: set[int] = set()  # nodes being built: an alias to one of them would recurse forever

    def build(self, node: yaml.Node, loc: Loc) -> object:
        self._budget -= 1
        if self._budget < 0:
            raise _TooLarge(f"more than {MAX_VALUES} values once aliases are expanded", _mark(node))
        self.document.values.setdefault(loc, _mark(node))
        if id(node) in self._open:
            self._problem(loc, "an alias refers to a mapping or list that contains it", node)
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.ScalarNode):
                return self._scalar(node, loc)
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ:
                    self._problem(loc, f"the tag {_escaped(node.tag)} is not supported", node)
                return [self.build(item, (*loc, index)) for index, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            if node.tag != _MAP:
                self._problem(loc, f"the tag {_escaped(node.tag)} is not supported", node)
            return self._mapping(node, loc)
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, object]:
        result: dict[str, object] = {}
        first_line: dict[str, int] = {}
        sources: list[yaml.MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                sources += self._merge_sources(value_node, loc)
                continue
            key = self._key(key_node, loc)
            if key is None:
                continue
            if key in first_line:
                message = f"written twice in this mapping (first on line {first_line[key]})"
                self._problem((*loc, key), message, key_node)
                continue
            first_line[key] = _mark(key_node)[0]
            self.document.keys[(*loc, key)] = _mark(key_node)
            result[key] = self.build(value_node, (*loc, key))
        # `<<` merges: keys written here win, and among the merged mappings the first one listed wins.
        for source in sources:
            self._open.add(id(source))
            try:
                merged = self._mapping(source, loc)
            finally:
                self._open.discard(id(source))
            for key, value in merged.items():
                result.setdefault(key, value)
        return result

    def _merge_sources(self, node: yaml.Node, loc: Loc) -> list[yaml.MappingNode]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        sources = [item for item in items if isinstance(item, yaml.MappingNode)]
        if len(sources) != len(items):
            self._problem((*loc, "<<"), "a merge key (<<) takes a mapping or a list of mappings", node)
        if any(id(source) in self._open for source in sources):
            self._problem((*loc, "<<"), "an alias refers to a mapping that contains it", node)
            return []
        return sources

    def _key(self, node: yaml.Node, loc: Loc) -> str | None:
        # A key is taken as written: YAML 1.1 would read the key `on` as true and `022` as 18.
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        self._problem(
            loc, f"a key must be a name, not {describe([] if isinstance(node, yaml.SequenceNode) else {})}", node
        )
        return None

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> object:
        text = str(node.value)
        tag = node.tag
        if tag in (_STR, _TIMESTAMP):  # YAML 1.2 has no timestamps: a date stays the text written
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            meaning = "true" if text.lower() in ("yes", "y", "on") else "false"
            return self._as_text(loc, text, f"YAML 1.1 reads {text} as {meaning}, YAML 1.2 as text: write {meaning}")
        if tag == _INT:
            return self._integer(loc, text)
        if tag == _FLOAT:
            return self._float(loc, text)
        self._problem(loc, f"the tag {_escaped(tag)} is not supported", node)
        return None

    def _integer(self, loc: Loc, text: str) -> object:
        if _DECIMAL.fullmatch(text) and len(text) <= MAX_NUMBER_DIGITS:
            return int(text)
        if _OCTAL_1_1.fullmatch(text) and len(text) <= MAX_NUMBER_DIGITS:
            octal = int(text, 8)
            return self._as_text(loc, text, f"YAML 1.1 reads {text} as the octal number {octal}: drop the leading zero")
        return self._as_text(loc, text, "write it as a plain decimal number")

    def _float(self, loc: Loc, text: str) -> object:
        if text.lower() in _SPECIAL_FLOATS:
            return float(_SPECIAL_FLOATS[text.lower()])
        if _FLOAT_1_2.fullmatch(text) and len(text) <= MAX_NUMBER_DIGITS:
            return float(text)
        return self._as_text(loc, text, "write it as a plain decimal number")

    def _as_text(self, loc: Loc, text: str, note: str) -> str:
        self.document.notes[loc] = note
        return text

    def _problem(self, loc: Loc, message: str, node: yaml.Node) -> None:
        problem = Problem(message, loc, mark=_mark(node))
        if problem not in self.document.problems:  # a merged mapping is read once per merge
            self.document.problems.append(problem)


def _mark(node: yaml.Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _position(text: str, offset: int) -> Mark:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _yaml_problem(error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    problem = _escaped(error.problem or error.context or "invalid YAML")
    if mark is None:
        return Problem(f"not valid YAML: {problem}")
    return Problem(f"not valid YAML: {problem}", mark=(mark.line + 1, mark.column + 1))


def _escaped(text: str) -> str:
    """PyYAML's own words, with any control character a message could carry shown escaped."""
    return repr(text)[1:-1] if not text.isprintable() else text
