"""HttpClusterApi: the cluster's ZDU REST API and the nodes' /status over HTTP (httpx), one client per run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import httpx

from confluo.api.base import (
    PAGE_VIEW_PATH,
    SPACE_HOME_PATH,
    ApiAuth,
    ApiError,
    ClusterInfo,
    ClusterState,
    Heartbeat,
    InvalidTransition,
    PageView,
    StatusState,
    home_page_of,
    page_view_of,
    parse_cluster,
)
from confluo.waits import SYSTEM_CLOCK, Clock, retry

ZDU_BASE = "/rest/zdu"
# A node behind the load balancer that is failing or going down answers these until the LB notices.
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
GET_PAUSES = (0.3, 0.6, 0.9)  # GETs only: a POST that failed may have taken effect (the runner asks the cluster)


class _Passing(Exception):
    """A GET that may succeed when asked again: a transport error, or a status in RETRYABLE_STATUS."""

    def __init__(self, error: ApiError, response: httpx.Response | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.response = response


def _not_acted_on(passing: _Passing) -> bool:
    """Never sent (no connection), or refused unprocessed: RFC 9110's 503, the server unable to handle it now."""
    unavailable = passing.response is not None and passing.response.status_code == 503
    return unavailable or isinstance(passing.__cause__, httpx.ConnectError)


class HttpClusterApi:
    """The ZDU REST API of one cluster (usually reached through the load balancer).

    Every node serves the same API over the shared database, so when `base_url` cannot be reached (it is a node
    being stopped, or the load balancer is down) the calls go to the `fallback_urls` — the nodes' own URLs — in turn,
    and stay with the one that answered.
    """

    def __init__(
        self,
        base_url: str,
        auth: ApiAuth,
        *,
        verify_tls: bool = True,
        timeout: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
        fallback_urls: Sequence[str] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.verify_tls = verify_tls  # the nodes' own URLs are checked the same way
        self._clock = clock
        self._urls = list(dict.fromkeys([self.base_url, *(url.rstrip("/") for url in fallback_urls)]))
        self._client = httpx.Client(
            auth=http_auth(auth),
            verify=verify_tls,
            timeout=timeout,
            # Non-browser clients skip Atlassian's XSRF check with this header.
            headers={"Accept": "application/json", "X-Atlassian-Token": "no-check"},
        )
        self._status_client = httpx.Client(verify=verify_tls)  # /status needs no credentials: none are sent

    def close(self) -> None:
        self._client.close()
        self._status_client.close()

    def cluster(self) -> ClusterInfo:
        return parse_cluster(self._call("GET", "/cluster"))

    def state(self) -> ClusterState:
        return ClusterState.parse(self._call("GET", "/state").get("state"))

    def start_upgrade(self) -> ClusterInfo:
        return parse_cluster(self._call("POST", "/start"))

    def cancel_upgrade(self) -> ClusterInfo:
        return parse_cluster(self._call("POST", "/cancel"))

    def approve_upgrade(self) -> ClusterInfo:
        return parse_cluster(self._call("POST", "/approve"))

    def retry_upgrade(self) -> ClusterInfo:
        return parse_cluster(self._call("POST", "/retryUpgrade"))

    def node_status(self, url: str, *, timeout: float = 5.0) -> StatusState:
        try:
            response = self._status_client.get(url.rstrip("/") + "/status", timeout=timeout)
        except httpx.HTTPError:
            return StatusState.UNREACHABLE
        try:
            body = response.json()
        except ValueError:
            return StatusState.UNKNOWN
        state = StatusState.parse(body.get("state") if isinstance(body, dict) else None)
        if state is StatusState.RUNNING and response.status_code != 200:
            return StatusState.UNKNOWN
        return state

    def heartbeat(self, url: str, *, timeout: float = 5.0) -> Heartbeat:
        try:
            response = self._status_client.get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            return Heartbeat(False, f"unreachable ({type(exc).__name__})")
        body = response.text.strip()
        if response.status_code == 200 and body == "OK":
            return Heartbeat(True, "OK")
        shown = body[:40] if body.isprintable() else "(not text)"
        return Heartbeat(False, f"HTTP {response.status_code} {shown!r}".rstrip())

    def view_page(self, url: str) -> PageView:
        base = url.rstrip("/")
        try:
            home = home_page_of(*self._read_json(base + SPACE_HOME_PATH))
            if isinstance(home, PageView):
                return home
            return page_view_of(*self._read_json(base + PAGE_VIEW_PATH.format(id=home)))
        except httpx.TimeoutException as exc:
            return PageView(False, f"no answer within cluster.timeout_seconds ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return PageView(False, f"unreachable ({type(exc).__name__})")

    def _read_json(self, url: str) -> tuple[int, Any]:
        response = self._client.get(url)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    @property
    def current_url(self) -> str:
        """The URL the calls go to now: `base_url`, or the fallback that answered last."""
        return self._urls[0]

    def _send(self, method: str, path: str) -> httpx.Response:
        """The current URL first, then each fallback; the first that answers becomes the current one.

        A POST moves on only when it was not acted on: it could not connect, or the answer was 503 (a load balancer
        with no server to send it to, a node not serving yet). One that timed out or failed otherwise may have taken
        effect, and the step that sent it asks the cluster before it sends it again."""
        failure: _Passing | None = None
        for base in list(self._urls):
            try:
                response = self._send_to(base, method, path)
            except _Passing as passing:
                failure = passing
                if method == "POST" and not _not_acted_on(passing):
                    break
                continue
            if base != self._urls[0]:
                self._urls.remove(base)
                self._urls.insert(0, base)
            return response
        assert failure is not None
        if failure.response is not None:
            return failure.response
        raise failure.error from failure

    def _send_to(self, base: str, method: str, path: str) -> httpx.Response:
        """GETs are retried briefly: behind a load balancer, the node answering may be the one going down."""

        def once() -> httpx.Response:
            try:
                headers = {"Content-Type": "application/json"} if method == "POST" else None
                response = self._client.request(method, base + path, headers=headers)
            except httpx.HTTPError as exc:
                raise _Passing(ApiError(f"cluster API {method} {base}{path}: {exc}")) from exc
            if response.status_code in RETRYABLE_STATUS:
                raise _Passing(ApiError(f"cluster API {method} {base}{path}: {http_problem(response)}"), response)
            return response

        pauses = GET_PAUSES if method == "GET" else ()
        return retry(once, on=(_Passing,), pauses=pauses, clock=self._clock)

    def _call(self, method: str, path: str) -> dict[str, Any]:
        url = ZDU_BASE + path
        response = self._send(method, url)
        if response.status_code == 409:
            raise InvalidTransition(f"cluster API {method} {url}: 409, the cluster's state does not allow it now")
        if response.status_code in (401, 403):
            raise ApiError(
                f"cluster API {method} {url}: {response.status_code}; the credentials are not a system administrator's",
            )
        if response.status_code >= 400:
            raise ApiError(f"cluster API {method} {url}: {http_problem(response)}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(f"cluster API {method} {url}: the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise ApiError(f"cluster API {method} {url}: expected a JSON object")
        return body


REASON_CHARACTERS = 120


def http_problem(response: httpx.Response) -> str:
    """`HTTP 503: why`, the why in brief from the answer: Confluence's JSON `message`, or the text of a gateway's
    page ("No server is available to handle this request."), so that a halt says who refused and why."""
    text = f"HTTP {response.status_code}"
    try:
        body = response.json()
        reason = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        reason = re.sub(r"<[^>]*>", " ", response.text)
    if not isinstance(reason, str):
        return text
    reason = " ".join(reason.split())
    reason = reason.removeprefix(f"{response.status_code} {response.reason_phrase}").strip()
    if not reason or not reason.isprintable():
        return text
    if len(reason) > REASON_CHARACTERS:
        reason = reason[: REASON_CHARACTERS - 1] + "…"
    return f"{text}: {reason}"


def http_auth(auth: ApiAuth) -> httpx.Auth:
    """Basic auth, or a personal access token as a Bearer header."""
    return _Bearer(auth.secret) if auth.bearer else httpx.BasicAuth(auth.username or "", auth.secret)


class _Bearer(httpx.Auth):
    """A personal access token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
