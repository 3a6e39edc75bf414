"""The lab's CQL and a node's search index, as pure functions: which documents a query finds, in which order,
and which queries it refuses (the API answers those with 400)."""

from __future__ import annotations

import pytest

from confluo.lab.node.cql import CqlError, Document, parse
from confluo.lab.node.search_index import SearchIndex

DOCS = [
    Document(1, "page", "LAB", "Release checklist", "<p>Check the <b>runbook</b> first.</p>", 10.0),
    Document(2, "page", "OPS", "Runbook", "<p>Restart one node at a time.</p>", 30.0),
    Document(3, "page", "LAB", "confluo verify 3f9a2c", "<p>Created by confluo verify.</p>", 20.0),
]


def ids(cql: str) -> list[int]:
    return [doc.id for doc in parse(cql).run(DOCS)]


@pytest.mark.parametrize(("cql", "expected"), [
    ('title ~ "checklist"', [1]),
    ("title ~ CHECKLIST", [1]),  # words are case-insensitive
    ("title ~ 'release checklist'", [1]),  # every word of the value
    ('title ~ "release runbook"', []),
    ("title ~ check*", [1]),  # a prefix
    ("text ~ runbook", [1, 2]),  # the title and the body, without markup
    ("text ~ b", []),  # markup is not text
    ('text ~ "3f9a2c"', [3]),
    ("space = LAB", [1, 3]),
    ("space.key = lab", [1, 3]),
    ('space = "OPS" AND text ~ runbook', [2]),
    ("space in (LAB, OPS) AND NOT title ~ runbook", [1, 3]),
    ("space not in (LAB)", [2]),
    ("title = Runbook", [2]),
    ("title != Runbook", [1, 3]),
    ("text !~ runbook", [3]),
    ("type = page AND (space = OPS OR title ~ verify)", [2, 3]),
    ("title ~ release OR title ~ runbook AND space = LAB", [1]),  # AND binds tighter than OR
    ("id = 2", [2]),
    ("type = page ORDER BY created DESC", [2, 3, 1]),
    ("type = page order by title", [3, 1, 2]),
    ("space = LAB and title ~ verify", [3]),  # keywords in any case
])  # fmt: skip
def test_a_query_finds_what_confluence_would(cql: str, expected: list[int]) -> None:
    assert ids(cql) == expected


def test_quotes_may_hold_escaped_quotes_and_spaces() -> None:
    doc = Document(4, "page", "LAB", 'The "quoted" title', "", 1.0)
    assert parse(r'title = "The \"quoted\" title"').run([doc]) == [doc]


@pytest.mark.parametrize("cql", [
    "title", "title ~", "~ x", "bogus ~ x", "title ~ x AND", "title ~ x y", "space ~ LAB", "text = x",
    "(type = page", "type = page)", "space in LAB", "type = page ORDER BY colour", "title ~ (x)", '"title" ~ x',
])  # fmt: skip
def test_a_query_the_lab_does_not_understand_is_refused(cql: str) -> None:
    with pytest.raises(CqlError, match="Could not parse cql"):
        parse(cql)


def test_the_index_takes_journal_entries_in_order_and_forgets_what_is_gone() -> None:
    index = SearchIndex()
    first, second, _ = DOCS
    index.take([(1, 1, first), (2, 2, second)])
    assert [d.id for d in index.search(parse("type = page"))] == [1, 2] and index.position == 2
    index.take([(3, 1, None)])  # page 1 trashed
    assert [d.id for d in index.search(parse("type = page"))] == [2] and index.position == 3
