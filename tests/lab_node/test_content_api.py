"""The content REST API over real HTTP, between real node processes: pages are shared through the cluster
database at once, each node's search index takes them on its own schedule, and `index-broken` stops one."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

from confluo.lab.node.cluster_state import cluster_view
from confluo.lab.node.clusterdb import set_fault, set_timings

from .conftest import TOKEN, Cluster, Node, Response, http, wait_for


def page(title: str, body: str = "<p>The runbook for the cluster.</p>", space: str = "LAB") -> dict[str, Any]:
    return {"type": "page", "title": title, "space": {"key": space},
            "body": {"storage": {"value": body, "representation": "storage"}}}  # fmt: skip


def create(node: Node, title: str, **kwargs: Any) -> Response:
    return http("POST", node.url + "/rest/api/content", body=page(title, **kwargs))


def search(node: Node, cql: str) -> list[str]:
    reply = http("GET", f"{node.url}/rest/api/search?cql={quote(cql)}")
    assert reply.status == 200, reply
    return [result["content"]["id"] for result in reply.json()["results"]]


def row(cluster: Cluster, node: Node) -> dict[str, Any]:
    return cluster.view_node(node)


def started(cluster: Cluster, *names: str) -> list[Node]:
    nodes = [cluster.add_node(name) for name in names]
    for node in nodes:
        assert cluster.start(node).returncode == 0
    for node in nodes:
        cluster.wait_status(node, "RUNNING")
    return nodes


def test_a_page_is_readable_on_every_node_at_once_with_confluences_shapes(running: tuple[Cluster, Node, Node]) -> None:
    _, first, second = running
    created = create(first, "Runbook")
    assert created.status == 200, created
    assert re.search(r"JSESSIONID=\w+", created.headers.get("Set-Cookie", ""))
    content = created.json()
    assert (content["type"], content["status"], content["title"]) == ("page", "current", "Runbook")
    assert content["space"]["key"] == "LAB" and content["body"]["storage"]["value"].startswith("<p>")
    assert content["history"]["createdBy"]["username"] == "admin" and content["version"]["number"] == 1
    assert content["_links"]["self"] == f"{first.url}/rest/api/content/{content['id']}"
    fetched = http("GET", f"{second.url}/rest/api/content/{content['id']}")
    assert fetched.status == 200 and fetched.headers["X-Confluence-Node"] == "node2"
    assert fetched.json()["title"] == "Runbook" and "body" not in fetched.json()  # body.storage only if expanded
    expanded = http("GET", f"{second.url}/rest/api/content/{content['id']}?expand=body.storage")
    assert expanded.json()["body"]["storage"]["value"] == content["body"]["storage"]["value"]
    listed = http("GET", f"{second.url}/rest/api/content?spaceKey=LAB&title=Runbook").json()
    assert [c["id"] for c in listed["results"]] == [content["id"]] and listed["size"] == 1
    missing = http("GET", f"{second.url}/rest/api/content/999999")
    assert missing.status == 404 and missing.json()["message"] == "No content found with id: ContentId{id=999999}"
    home = http("GET", second.url + "/", auth=None)
    assert home.status == 200 and b"node2" in home.body


REFUSED_CREATES = [
    ({"type": "page", "title": "x"}, "space"),
    ({"type": "page", "title": "x", "space": {"key": "NOPE"}}, "No space with key : NOPE"),
    ({"type": "page", "title": " ", "space": {"key": "LAB"}}, "empty title"),
    ({"type": "comment", "title": "x", "space": {"key": "LAB"}}, "Unsupported content type"),
    ({"title": "x", "body": "<p>not storage</p>", "type": "page", "space": {"key": "LAB"}}, "storage"),
]


def test_a_create_that_confluence_refuses_is_a_400_saying_why(running: tuple[Cluster, Node, Node]) -> None:
    _, first, _ = running
    for body, message in REFUSED_CREATES:
        reply = http("POST", first.url + "/rest/api/content", body=body)
        assert reply.status == 400 and message in reply.json()["message"], (body, reply)
        assert reply.json()["statusCode"] == 400 and reply.json()["reason"] == "Bad Request"
    listed = http("GET", first.url + "/rest/api/content?spaceKey=LAB").json()["results"]
    assert [page["title"] for page in listed] == ["Lab Home"]  # the space's own home page, no other


def test_a_title_is_taken_once_per_space(running: tuple[Cluster, Node, Node]) -> None:
    _, first, second = running
    assert create(first, "Twice").status == 200
    again = create(second, "twice")
    assert again.status == 400 and "A page with this title already exists" in again.json()["message"]


def test_the_content_api_needs_the_admin_or_the_token(running: tuple[Cluster, Node, Node]) -> None:
    _, first, _ = running
    anonymous = http("POST", first.url + "/rest/api/content", auth=None, body=page("Nope"))
    assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert http("GET", first.url + "/rest/api/space", auth=("admin", "wrong")).status == 401
    assert http("GET", first.url + "/rest/api/search?cql=type%3Dpage", auth=None).status == 401
    spaces = http("GET", first.url + "/rest/api/space?type=global", auth=None, token=TOKEN)
    assert spaces.status == 200 and [s["key"] for s in spaces.json()["results"]] == ["LAB"]
    assert http("GET", first.url + "/rest/api/space/lab", token=TOKEN).json()["name"] == "Lab"
    assert http("GET", first.url + "/rest/api/space/NOPE").status == 404


def test_a_search_finds_a_page_only_once_the_nodes_index_has_taken_it(cluster: Cluster) -> None:
    set_timings(cluster.db, index_seconds=3600)  # each node looks at the journal once, at its start
    first, second = started(cluster, "node1", "node2")
    content_id = create(first, "Release checklist").json()["id"]
    assert search(first, 'title ~ "checklist"') == [] and search(second, "type = page") == []  # not indexed yet
    set_timings(cluster.db, index_seconds=0.05)
    for node in (first, second):
        wait_for(lambda node=node: search(node, 'title ~ "checklist"') == [content_id], 10, f"{node.name}'s index")
    assert search(second, "text ~ runbook AND space = LAB") == [content_id]  # a word of the body
    assert search(second, "text ~ runbook AND space = OPS") == []
    reply = http("GET", f"{second.url}/rest/api/search?cql={quote('title ~ release')}").json()
    assert (reply["totalSize"], reply["cqlQuery"]) == (1, "title ~ release")
    assert reply["results"][0]["entityType"] == "content"
    assert reply["results"][0]["resultGlobalContainer"] == {"title": "Lab", "displayUrl": "/display/LAB"}
    journal = cluster_view(cluster.db)["index_journal"]
    wait_for(lambda: row(cluster, second)["index_position"] == journal, 10, "node2's heartbeat to tell its position")


def test_a_deleted_page_goes_to_the_trash_and_is_purged_from_it(cluster: Cluster) -> None:
    set_timings(cluster.db, index_seconds=0.05)
    first, second = started(cluster, "node1", "node2")
    content_id = create(first, "Old notes").json()["id"]
    wait_for(lambda: search(second, "title ~ notes") == [content_id], 10, "node2's index")
    assert http("DELETE", f"{first.url}/rest/api/content/{content_id}").status == 204
    assert http("GET", f"{second.url}/rest/api/content/{content_id}").status == 404
    trashed = http("GET", f"{second.url}/rest/api/content/{content_id}?status=trashed")
    assert trashed.status == 200 and trashed.json()["status"] == "trashed"
    wait_for(lambda: search(second, "title ~ notes") == [], 10, "the trashed page to leave node2's index")
    assert http("DELETE", f"{second.url}/rest/api/content/{content_id}").status == 404  # already in the trash
    assert http("DELETE", f"{second.url}/rest/api/content/{content_id}?status=trashed").status == 204
    assert http("GET", f"{first.url}/rest/api/content/{content_id}?status=trashed").status == 404
    assert create(first, "Old notes").status == 200  # the title is free again


def test_index_broken_stops_one_nodes_index_until_cleared(cluster: Cluster) -> None:
    set_timings(cluster.db, index_seconds=0.05)
    first, second = started(cluster, "node1", "node2")
    set_fault(cluster.db, "node1", "index-broken")
    content_id = create(second, "Incident review").json()["id"]
    created = time.time()
    wait_for(lambda: search(second, "title ~ incident") == [content_id], 10, "node2's index")
    wait_for(lambda: (row(cluster, first)["index_checked"] or 0) > created, 10, "node1 to look at the journal")
    assert search(first, "title ~ incident") == []  # it looked, and took nothing
    assert http("GET", f"{first.url}/rest/api/content/{content_id}").status == 200  # reading is not searching
    assert row(cluster, first)["index_position"] < cluster_view(cluster.db)["index_journal"]
    set_fault(cluster.db, "node1", None)
    wait_for(lambda: search(first, "title ~ incident") == [content_id], 10, "node1's index after the fault")


def test_cql_the_lab_does_not_understand_is_a_400(running: tuple[Cluster, Node, Node]) -> None:
    _, first, _ = running
    for cql in ("", "title ~ x AND"):  # every rule of the parser: tests/test_lab_cql.py
        reply = http("GET", f"{first.url}/rest/api/search?cql={quote(cql)}")
        assert reply.status == 400 and reply.json()["statusCode"] == 400, cql
