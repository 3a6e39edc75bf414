"""A typed, stateful fake of Confluence's content REST API for the fast tests of `confluo verify`.

    content = FakeContentApi(clock, "http://lb.invalid", ["http://127.0.0.11:8090", ...])
    content.node("http://127.0.0.12:8090").index_broken = True     # its search never finds new pages

Pages live in one "database" that every URL reads at once; each node's search finds a page only `lag` seconds
(of the FakeClock) after it was created, as a real node's index does, and never with `index_broken`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from confluo.api.content import ContentError, Page, Space
from confluo.waits import Clock


@dataclass
class FakeNode:
    url: str
    lag: float = 0.6  # seconds until its index has taken a new page
    index_broken: bool = False
    down: bool = False  # connection refused
    own_database: bool = False  # it answers, but from another database: 404 for the cluster's pages
    refuses: int | None = None  # every call answers this HTTP status (401, 500, ...)


@dataclass
class StoredPage:
    page: Page
    created: float


@dataclass
class FakeContentApi:
    clock: Clock
    api_url: str
    node_urls: list[str]
    spaces: dict[str, Space] = field(default_factory=lambda: {"LAB": Space("LAB", "Lab"), "OPS": Space("OPS", "Ops")})
    pages: dict[str, StoredPage] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    create_fails: ContentError | None = None
    create_fails_after_creating: bool = False  # the failure came after the page was made (a timeout)
    delete_fails: ContentError | None = None
    purge_fails: ContentError | None = None
    interrupt_on_search: int | None = None  # Ctrl-C at that search call
    closed: bool = False
    nodes: dict[str, FakeNode] = field(init=False)
    _next_id: int = 65601

    def __post_init__(self) -> None:
        self.nodes = {url: FakeNode(url) for url in self.node_urls}

    def node(self, url: str) -> FakeNode:
        return self.nodes[url]

    def current(self) -> list[Page]:
        return [stored.page for stored in self.pages.values() if stored.page.status == "current"]

    def _reach(self, base: str, call: str) -> FakeNode | None:
        self.calls.append(f"{call} {base}")
        node = self.nodes.get(base)
        if node is not None and node.down:
            raise ContentError(f"{call} {base}: [Errno 111] Connection refused", sent=False)
        if node is not None and node.refuses is not None:
            raise ContentError(f"{call} {base}: HTTP {node.refuses}", status=node.refuses)
        return node

    def space(self, base: str, key: str) -> Space | None:
        self._reach(base, "space")
        return self.spaces.get(key.upper())

    def first_space(self, base: str) -> Space | None:
        self._reach(base, "first_space")
        return next(iter(self.spaces.values()), None)

    def create_page(self, base: str, space_key: str, title: str, body: str) -> Page:
        self._reach(base, "create")
        if self.create_fails is not None and not self.create_fails_after_creating:
            raise self.create_fails
        page = Page(str(self._next_id), title, space_key, "current")
        self._next_id += 1
        self.pages[page.id] = StoredPage(page, self.clock.monotonic())
        if self.create_fails is not None:
            raise self.create_fails
        return page

    def find_pages(self, base: str, space_key: str, title: str) -> list[Page]:
        self._reach(base, "find")
        return [p for p in self.current() if (p.space_key, p.title) == (space_key, title)]

    def read_page(self, base: str, page_id: str) -> Page | None:
        node = self._reach(base, "read")
        stored = self.pages.get(page_id)
        if (node is not None and node.own_database) or stored is None or stored.page.status != "current":
            return None
        return stored.page

    def search(self, base: str, cql: str) -> list[str]:
        node = self._reach(base, "search")
        searches = sum(call.startswith("search") for call in self.calls)
        if self.interrupt_on_search is not None and searches >= self.interrupt_on_search:
            raise KeyboardInterrupt
        space = re.search(r'space = "([^"]+)"', cql)
        word = re.search(r'title ~ "([^"]+)"', cql)
        assert space and word, cql
        if node is None or node.index_broken or node.own_database:
            return []
        now = self.clock.monotonic()
        return [
            stored.page.id for stored in self.pages.values()
            if stored.page.status == "current" and now - stored.created >= node.lag
            and stored.page.space_key == space[1] and word[1] in stored.page.title.split()
        ]  # fmt: skip

    def delete_page(self, base: str, page_id: str, *, trashed: bool = False) -> bool:
        self._reach(base, "purge" if trashed else "delete")
        failure = self.purge_fails if trashed else self.delete_fails
        if failure is not None:
            raise failure
        stored = self.pages.get(page_id)
        if stored is None or stored.page.status != ("trashed" if trashed else "current"):
            return False
        if trashed:
            del self.pages[page_id]
        else:
            stored.page = Page(stored.page.id, stored.page.title, stored.page.space_key, "trashed")
        return True

    def close(self) -> None:
        self.closed = True
