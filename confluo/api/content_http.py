"""HttpContentApi: Confluence's content REST API over HTTP (httpx), one client for every base URL of a run.

Lookups and deletes are asked again briefly when the answer is a gateway's error or none came (behind a load
balancer, the node answering may be going down); a create never is (it may have taken effect: the caller looks
for the page by its title), and the reads and searches of the cluster test are polled by their caller.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from confluo.api.base import ApiAuth
from confluo.api.content import (
    CONTENT_BASE,
    ContentError,
    Page,
    Space,
    page_payload,
    parse_page,
    parse_results,
    parse_search,
    parse_space,
)
from confluo.api.zdu import RETRYABLE_STATUS, http_auth, http_problem
from confluo.waits import SYSTEM_CLOCK, Clock, retry

PAUSES = (0.3, 0.6, 0.9)


class HttpContentApi:
    def __init__(
        self, auth: ApiAuth, *, verify_tls: bool = True, timeout: float = 10.0, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._clock = clock
        self._client = httpx.Client(
            auth=http_auth(auth),
            verify=verify_tls,
            timeout=timeout,
            headers={"Accept": "application/json", "X-Atlassian-Token": "no-check"},  # no XSRF check for scripts
        )

    def close(self) -> None:
        self._client.close()

    def space(self, base: str, key: str) -> Space | None:
        response = self._call("GET", base, f"/space/{quote(key, safe='~')}", again=True, missing_ok=True)
        return parse_space(_json(response)) if response.status_code != 404 else None

    def first_space(self, base: str) -> Space | None:
        response = self._call("GET", base, "/space", params={"type": "global", "limit": "1"}, again=True)
        spaces = parse_results(_json(response))
        return parse_space(spaces[0]) if spaces else None

    def create_page(self, base: str, space_key: str, title: str, body: str) -> Page:
        response = self._call("POST", base, "/content", body=page_payload(space_key, title, body))
        return parse_page(_json(response))

    def find_pages(self, base: str, space_key: str, title: str) -> list[Page]:
        params = {"spaceKey": space_key, "title": title, "limit": "25"}
        response = self._call("GET", base, "/content", params=params, again=True)
        return [parse_page(entry) for entry in parse_results(_json(response))]

    def read_page(self, base: str, page_id: str) -> Page | None:
        response = self._call("GET", base, f"/content/{quote(page_id)}", missing_ok=True)
        return parse_page(_json(response)) if response.status_code != 404 else None

    def search(self, base: str, cql: str) -> list[str]:
        response = self._call("GET", base, "/search", params={"cql": cql, "limit": "25"})
        return parse_search(_json(response))

    def delete_page(self, base: str, page_id: str, *, trashed: bool = False) -> bool:
        params = {"status": "trashed"} if trashed else None
        response = self._call("DELETE", base, f"/content/{quote(page_id)}", params=params, again=True, missing_ok=True)
        return response.status_code != 404

    def _call(
        self,
        method: str,
        base: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        again: bool = False,
        missing_ok: bool = False,
    ) -> httpx.Response:
        url = base.rstrip("/") + CONTENT_BASE + path
        what = f"{method} {url}"

        def once() -> httpx.Response:
            try:
                response = self._client.request(method, url, params=params, json=body)
            except httpx.HTTPError as exc:
                sent = not isinstance(exc, httpx.ConnectError)
                raise _Passing(f"{what}: {str(exc) or type(exc).__name__}", sent=sent) from exc
            code = response.status_code
            if code >= 400 and not (missing_ok and code == 404):
                failure = _Passing if code in RETRYABLE_STATUS else ContentError
                raise failure(f"{what}: {_problem(response)}", status=code)
            return response

        return retry(once, on=(_Passing,), pauses=PAUSES if again else (), clock=self._clock)


class _Passing(ContentError):
    """A failure that may pass when asked again: no answer, or a gateway's error."""


def _problem(response: httpx.Response) -> str:
    """HTTP 400: Confluence's own message, when it gave one."""
    if response.status_code in (401, 403):
        return (
            f"HTTP {response.status_code}; the credentials are refused "
            "(a user who may create and delete pages in the space is needed)"
        )
    return http_problem(response)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise ContentError(f"{response.request.method} {response.request.url}: the answer is not JSON") from exc
    if not isinstance(body, dict):
        raise ContentError(f"{response.request.method} {response.request.url}: expected a JSON object")
    return body
