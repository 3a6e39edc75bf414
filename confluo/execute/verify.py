"""`confluo verify`: the test at the end of Atlassian's cluster set-up guide. Create a page through the load
balancer, read it on every node by the node's own URL, find it with a CQL search on every node, then delete it.

A read shows that the node shares the cluster's database; a search, that its own search index has taken the page.
Each node's index takes new content a little later (a few seconds in Confluence), so the checks are asked again
until each passes or the deadline passes. The page is deleted (trashed, then purged from the trash) whatever
happens: a failed check, an error, Ctrl-C. Nothing else is written anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluo.api.content import ContentApi, ContentError, Page, Space, cql_string
from confluo.errors import LeftBehind, RefusedError
from confluo.events import EventBus
from confluo.waits import Clock, Deadline, TimedOut, poll

TITLE = "confluo verify"
POLL_SECONDS = 0.25


class NodeUrl(Protocol):
    """What the cluster test needs of a node: its name, and its own URL (not the load balancer's)."""

    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...


@dataclass
class NodeCheck:
    """What one node showed of the test page; seconds are counted from its creation."""

    name: str
    url: str
    read_seconds: float | None = None
    search_seconds: float | None = None
    read_problem: str | None = None
    search_problem: str | None = None
    read_final: bool = False  # an answer that asking again would not change (400, 401, 403)
    search_final: bool = False

    @property
    def read_ok(self) -> bool:
        return self.read_seconds is not None

    @property
    def search_ok(self) -> bool:
        return self.search_seconds is not None

    @property
    def settled(self) -> bool:
        return (self.read_ok or self.read_final) and (self.search_ok or self.search_final)

    def failures(self) -> list[str]:
        failed = [] if self.read_ok else [f"{self.name}: read {self.url}: {self.read_problem}"]
        return failed + ([] if self.search_ok else [f"{self.name}: search {self.url}: {self.search_problem}"])

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "read": self.read_ok,
            "read_seconds": _rounded(self.read_seconds),
            "read_problem": self.read_problem,
            "search": self.search_ok,
            "search_seconds": _rounded(self.search_seconds),
            "search_problem": self.search_problem,
        }


@dataclass(frozen=True)
class Cleanup:
    trashed: bool
    purged: bool
    problem: str | None = None

    @property
    def left_behind(self) -> bool:
        return not self.trashed


@dataclass(frozen=True)
class VerifyReport:
    api_url: str
    space: Space
    page: Page
    cql: str
    deadline_seconds: float
    nodes: tuple[NodeCheck, ...]
    cleanup: Cleanup

    @property
    def passed(self) -> bool:
        return all(check.read_ok and check.search_ok for check in self.nodes)

    def failures(self) -> list[str]:
        return [failure for check in self.nodes for failure in check.failures()]

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "api_url": self.api_url,
            "space": self.space.key,
            "page": {"id": self.page.id, "title": self.page.title},
            "cql": self.cql,
            "deadline_seconds": self.deadline_seconds,
            "nodes": [check.as_json() for check in self.nodes],
            "cleanup": {"trashed": self.cleanup.trashed, "purged": self.cleanup.purged,
                        "problem": self.cleanup.problem},
        }  # fmt: skip


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 2) if seconds is not None else None


def verify_cluster(
    content: ContentApi,
    *,
    api_url: str,
    nodes: Sequence[NodeUrl],
    space_key: str | None,
    deadline_seconds: float,
    marker: str,
    clock: Clock,
    events: EventBus,
) -> VerifyReport:
    """`marker`: a word no other page has, in the title, which the searches look for."""
    space = _space(content, api_url, space_key)
    checks = tuple(NodeCheck(node.name, node.url) for node in nodes)
    cql = f"space = {cql_string(space.key)} AND title ~ {cql_string(marker)}"
    page = _create(content, api_url, space, marker)
    try:
        began = clock.monotonic()
        events.emit("note", f"created the test page {page.id} {page.title!r} in space {space.key} through {api_url}")
        _check_every_node(content, checks, page, cql, Deadline.after(clock, deadline_seconds), began, events)
    finally:
        cleanup = _delete(content, api_url, page, space, events)
    return VerifyReport(api_url, space, page, cql, deadline_seconds, checks, cleanup)


def _space(content: ContentApi, api_url: str, key: str | None) -> Space:
    try:
        space = content.space(api_url, key) if key is not None else content.first_space(api_url)
    except ContentError as error:
        raise RefusedError([f"cannot look up the space for the test page: {error.message}"]) from error
    if space is None and key is not None:
        raise RefusedError([f"there is no space {key!r} at {api_url} (or the user may not see it)"],
                           hint="name a space the user may create and delete pages in: --space KEY")  # fmt: skip
    if space is None:
        raise RefusedError([f"{api_url} lists no global space to create the test page in"], hint="--space KEY")
    return space


def _create(content: ContentApi, api_url: str, space: Space, marker: str) -> Page:
    title = f"{TITLE} {marker}"
    body = (f"<p>A test page of <code>confluo verify</code> ({marker}): created through the load balancer, read "
            f"and searched for on every node, then deleted again.</p>")  # fmt: skip
    try:
        return content.create_page(api_url, space.key, title, body)
    except ContentError as error:
        cause = error
    # A create that was sent may have made the page all the same (a timeout; a load balancer that retried it on
    # another node, which then found the title taken): look for it by its title, in the database, and delete it.
    if cause.sent and cause.status not in (401, 403):
        try:
            found = content.find_pages(api_url, space.key, title)
        except ContentError as lookup:
            if cause.ambiguous:
                raise _left_behind(title, space, f"{cause.message}; then {lookup.message}") from cause
            found = []
        for page in found:
            if _delete(content, api_url, page, space, None).left_behind:
                raise _left_behind(title, space, cause.message) from cause
    raise RefusedError([f"cannot create the test page in space {space.key}: {cause.message}"]) from cause


def _left_behind(title: str, space: Space, problem: str) -> LeftBehind:
    return LeftBehind(
        f"the test page {title!r} may be left in space {space.key}: {problem}",
        hint=f"look for {title!r} in space {space.key} and delete it (and purge it from the space's trash)",
    )


def _check_every_node(
    content: ContentApi,
    checks: Sequence[NodeCheck],
    page: Page,
    cql: str,
    deadline: Deadline,
    began: float,
    events: EventBus,
) -> None:
    def look() -> bool:
        for check in checks:
            _look(content, check, page, cql, lambda: deadline.clock.monotonic() - began, events)
        return all(check.settled for check in checks)

    try:
        poll(look, until=bool, deadline=deadline, interval=POLL_SECONDS)
    except TimedOut:
        for check in checks:
            within = f"within {deadline.seconds:g} s"
            if not check.read_ok and not check.read_final:
                check.read_problem = f"not readable {within} ({check.read_problem})"
            if not check.search_ok and not check.search_final:
                last = check.search_problem
                check.search_problem = f"not found {within} (the search {last}): its search index is behind or broken"
                events.emit("note", f"{check.name}: the search did not find the test page {within}", node=check.name)


def _look(
    content: ContentApi, check: NodeCheck, page: Page, cql: str, elapsed: Callable[[], float], events: EventBus
) -> None:
    if not check.read_ok and not check.read_final:
        try:
            found = content.read_page(check.url, page.id)
        except ContentError as error:
            check.read_problem, check.read_final = error.message, error.final
        else:
            if found is not None and found.title == page.title:
                check.read_seconds, check.read_problem = elapsed(), None
                events.emit("note", f"{check.name}: read the test page on {check.url}", node=check.name)
            else:
                check.read_problem = "404, no such page" if found is None else f"id {page.id} is {found.title!r}"
    if not check.search_ok and not check.search_final:
        try:
            ids = content.search(check.url, cql)
        except ContentError as error:
            check.search_problem, check.search_final = error.message, error.final
        else:
            if page.id in ids:
                check.search_seconds, check.search_problem = elapsed(), None
                events.emit("note", f"{check.name}: found the test page by search after {check.search_seconds:.2f} s",
                            node=check.name)  # fmt: skip
            else:
                check.search_problem = f"found {len(ids)} other page(s)" if ids else "found nothing"


def _delete(content: ContentApi, api_url: str, page: Page, space: Space, events: EventBus | None) -> Cleanup:
    """To the trash, then out of it. A page no longer there in that status counts as gone."""
    try:
        content.delete_page(api_url, page.id)
    except ContentError as error:
        cleanup = Cleanup(False, False, f"deleting it failed: {error.message}")
    else:
        try:
            content.delete_page(api_url, page.id, trashed=True)
        except ContentError as error:
            cleanup = Cleanup(True, False, f"it is in the trash of space {space.key}; purging it failed: "
                                           f"{error.message}")  # fmt: skip
        else:
            cleanup = Cleanup(True, True)
    if events is not None:
        said = f"deleted the test page {page.id}" + (" and purged it from the trash" if cleanup.purged else "")
        events.emit("note", said if not cleanup.problem else f"test page {page.id}: {cleanup.problem}")
    return cleanup
