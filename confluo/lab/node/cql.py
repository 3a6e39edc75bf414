"""CQL, the Confluence Query Language, as far as the lab's search goes: a parser that turns a query into a
predicate over the indexed documents, and the order of the results.

    text ~ "runbook" AND space = LAB          title ~ 'release notes*' OR title = "Home"
    type = page AND space.key IN (LAB, OPS)  NOT title ~ draft ORDER BY created DESC

Fields: ``text`` (title and body), ``title``, ``space`` / ``space.key``, ``type``, ``id``. ``~`` matches when
every word of the value is a word of the field (case-insensitive, ``word*`` a prefix), as Lucene's analyzed
fields do; ``=`` compares whole values. AND binds tighter than OR; NOT and parentheses as usual. Anything else
is a CqlError, which the API answers with 400 as Confluence does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

WORD = re.compile(r"\w+")
_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|!~|=|~|\(|\)|,)|(?P<word>[^\s=!~(),"']+))"""
)
_MARKUP = re.compile(r"<[^>]*>")
_TEXT_OPS = {"~", "!~"}
_EQUALITY_OPS = {"=", "!=", "in", "not in"}
_FIELDS = {
    "text": _TEXT_OPS,
    "title": _TEXT_OPS | _EQUALITY_OPS,
    "space": _EQUALITY_OPS,
    "space.key": _EQUALITY_OPS,
    "type": _EQUALITY_OPS,
    "id": _EQUALITY_OPS,
}


class CqlError(ValueError):
    """A query the lab's CQL does not accept."""


@dataclass(frozen=True)
class Document:
    """What a node's search index holds of one page."""

    id: int
    type: str
    space_key: str
    title: str
    body: str  # storage format; the markup is not searched
    created: float

    @functools.cached_property
    def text(self) -> str:
        """The body without its markup."""
        return " ".join(_MARKUP.sub(" ", self.body).split())

    @functools.cached_property
    def words(self) -> frozenset[str]:
        return words_of(f"{self.title} {self.text}")

    @functools.cached_property
    def title_words(self) -> frozenset[str]:
        return words_of(self.title)


def words_of(text: str) -> frozenset[str]:
    return frozenset(WORD.findall(text.lower()))


Predicate = Callable[[Document], bool]


@dataclass(frozen=True)
class Query:
    matches: Predicate
    order: tuple[tuple[str, bool], ...]  # (field, descending)

    def run(self, documents: Iterable[Document]) -> list[Document]:
        found = [doc for doc in documents if self.matches(doc)]
        for name, descending in reversed(self.order or (("id", False),)):
            found.sort(key=_SORT_KEYS[name], reverse=descending)  # stable: earlier fields win
        return found


_SORT_KEYS: dict[str, Callable[[Document], Any]] = {
    "id": lambda doc: doc.id,
    "title": lambda doc: doc.title.lower(),
    "created": lambda doc: doc.created,
    "lastmodified": lambda doc: doc.created,  # the lab's pages are never edited
}


def parse(cql: str) -> Query:
    tokens = _tokenize(cql)
    parser = _Parser(tokens, cql)
    matches = parser.expression()
    order = parser.order_by()
    if not parser.at_end():
        raise parser.error()
    return Query(matches, order)


def _tokenize(cql: str) -> list[tuple[str, str]]:
    """(kind, text) pairs: kind is string (quotes removed, escapes resolved), op or word."""
    tokens, position = [], 0
    while position < len(cql.rstrip()):
        match = _TOKEN.match(cql, position)
        if match is None or match.end() == position:
            raise CqlError(f"Could not parse cql : {cql}")
        kind = match.lastgroup or "word"
        text = match[kind]
        if kind == "string":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        tokens.append((kind, text))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: Sequence[tuple[str, str]], cql: str) -> None:
        self.tokens = tokens
        self.cql = cql
        self.at = 0

    def error(self) -> CqlError:
        return CqlError(f"Could not parse cql : {self.cql}")

    def at_end(self) -> bool:
        return self.at >= len(self.tokens)

    def peek(self, *keywords: str) -> bool:
        if self.at_end():
            return False
        kind, text = self.tokens[self.at]
        return kind != "string" and text.lower() in keywords

    def take(self) -> tuple[str, str]:
        if self.at_end():
            raise self.error()
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expect(self, keyword: str) -> None:
        if not self.peek(keyword):
            raise self.error()
        self.at += 1

    def expression(self) -> Predicate:
        terms = [self.term()]
        while self.peek("or"):
            self.at += 1
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else (lambda doc: any(term(doc) for term in terms))

    def term(self) -> Predicate:
        factors = [self.factor()]
        while self.peek("and"):
            self.at += 1
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda doc: all(factor(doc) for factor in factors))

    def factor(self) -> Predicate:
        if self.peek("not"):
            self.at += 1
            inner = self.factor()
            return lambda doc: not inner(doc)
        if self.peek("("):
            self.at += 1
            inner = self.expression()
            self.expect(")")
            return inner
        return self.clause()

    def clause(self) -> Predicate:
        kind, field = self.take()
        field = field.lower()
        if kind != "word" or field not in _FIELDS:
            raise self.error()
        op = self.operator()
        if op not in _FIELDS[field]:
            raise self.error()
        values = self.value_list() if op.endswith("in") else [self.value()]
        return _clause(field, op, values)

    def operator(self) -> str:
        if self.peek("not"):
            self.at += 1
            self.expect("in")
            return "not in"
        kind, text = self.take()
        if kind == "op" and text in ("=", "!=", "~", "!~"):
            return text
        if kind == "word" and text.lower() == "in":
            return "in"
        raise self.error()

    def value(self) -> str:
        kind, text = self.take()
        if kind == "op":
            raise self.error()
        return text

    def value_list(self) -> list[str]:
        self.expect("(")
        values = [self.value()]
        while self.peek(","):
            self.at += 1
            values.append(self.value())
        self.expect(")")
        return values

    def order_by(self) -> tuple[tuple[str, bool], ...]:
        if not self.peek("order"):
            return ()
        self.at += 1
        self.expect("by")
        order = [self.order_item()]
        while self.peek(","):
            self.at += 1
            order.append(self.order_item())
        return tuple(order)

    def order_item(self) -> tuple[str, bool]:
        kind, name = self.take()
        if kind != "word" or name.lower() not in _SORT_KEYS:
            raise self.error()
        descending = False
        if self.peek("asc", "desc"):
            descending = self.take()[1].lower() == "desc"
        return name.lower(), descending


def _clause(field: str, op: str, values: list[str]) -> Predicate:
    if op in _TEXT_OPS:
        wanted = [word.lower() for word in re.findall(r"\w+\*?", values[0])]

        def contains(doc: Document) -> bool:
            have = doc.title_words if field == "title" else doc.words
            found = bool(wanted) and all(_has_word(have, word) for word in wanted)
            return found if op == "~" else not found

        return contains
    accepted = {value.lower() for value in values}

    def equals(doc: Document) -> bool:
        found = _field_value(doc, field).lower() in accepted
        return found if op in ("=", "in") else not found

    return equals


def _has_word(have: frozenset[str], word: str) -> bool:
    if word.endswith("*"):
        return any(candidate.startswith(word[:-1]) for candidate in have)
    return word in have


def _field_value(doc: Document, field: str) -> str:
    if field == "title":
        return doc.title
    if field in ("space", "space.key"):
        return doc.space_key
    return doc.type if field == "type" else str(doc.id)
