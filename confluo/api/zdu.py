"""HttpClusterApi: the cluster's ZDU REST API and the nodes' /status over HTTP (httpx), one client per run."""

from __future__ import annotations

from typing import Any

import httpx

from confluo.api.base import (
    ApiAuth,
    ApiError,
    ClusterInfo,
    ClusterState,
    InvalidTransition,
    StatusState,
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


class HttpClusterApi:
    """The ZDU REST API of one cluster (usually reached through the load balancer)."""

    def __init__(
        self,
        base_url: str,
        auth: ApiAuth,
        *,
        verify_tls: bool = True,
        timeout: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.verify_tls = verify_tls  # the nodes' own URLs are checked the same way
        self._clock = clock
        credentials: httpx.Auth = (
            _Bearer(auth.secret) if auth.bearer else httpx.BasicAuth(auth.username or "", auth.secret)
        )
        self._client = httpx.Client(
            base_url=self.base_url,
            auth=credentials,
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

    def _send(self, method: str, url: str) -> httpx.Response:
        """GETs are retried briefly: behind a load balancer, the node answering may be the one going down."""

        def once() -> httpx.Response:
            try:
                headers = {"Content-Type": "application/json"} if method == "POST" else None
                response = self._client.request(method, url, headers=headers)
            except httpx.HTTPError as exc:
                raise _Passing(ApiError(f"cluster API {method} {self.base_url}{url}: {exc}")) from exc
            if response.status_code in RETRYABLE_STATUS:
                raise _Passing(ApiError(f"cluster API {method} {url}: HTTP {response.status_code}"), response)
            return response

        pauses = GET_PAUSES if method == "GET" else ()
        try:
            return retry(once, on=(_Passing,), pauses=pauses, clock=self._clock)
        except _Passing as passing:
            if passing.response is not None:
                return passing.response
            raise passing.error from passing

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
            raise ApiError(f"cluster API {method} {url}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(f"cluster API {method} {url}: the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise ApiError(f"cluster API {method} {url}: expected a JSON object")
        return body


class _Bearer(httpx.Auth):
    """A personal access token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
