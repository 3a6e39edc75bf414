"""Apache httpd's mod_proxy_balancer through its balancer-manager page, over HTTP.

The state comes from the manager's XML view (`?xml=1`): per balancer its nonce, per worker its URL, route, status
(`Init Drn Ok`, `Init Dis`, …) and busy count. A change is a form POST of the worker's flags with that nonce:
drain is `w_status_N`, maint is `w_status_D` (disabled), ready clears both and `w_status_S` (stopped).

The manager ignores every parameter of a request without a same-site Referer, and one with a wrong nonce or an
unknown worker, and still answers 200 with its page: only the state read back afterwards says whether the change
happened. Credentials (`auth`) go to httpx only and never into a message.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from confluo.loadbalancer.base import (
    NOT_STICKY,
    AdminState,
    LoadBalancer,
    LoadBalancerError,
    ServerState,
    check_applied,
)

NS = {"httpd": "http://httpd.apache.org"}
FLAGS = {
    AdminState.DRAIN: {"w_status_N": "1", "w_status_D": "0"},
    AdminState.MAINT: {"w_status_N": "0", "w_status_D": "1"},
    AdminState.READY: {"w_status_N": "0", "w_status_D": "0", "w_status_S": "0"},
}
NOT_PERSISTED = "will NOT be persisted on restart"


@dataclass(frozen=True)
class Worker:
    name: str  # its URL, as the manager's `w` parameter wants it
    route: str
    status: str
    busy: int | None


@dataclass(frozen=True)
class Balancer:
    nonce: str
    workers: tuple[Worker, ...]
    sticky: str = ""  # its stickysession (ROUTEID, JSESSIONID|jsessionid); empty: none


def parse_manager_xml(text: str, balancer: str) -> Balancer | None:
    """The balancer-manager's XML → the named balancer (its name without `balancer://`); None when absent."""
    # The XML comes from the load balancer confluo was pointed at; expat resolves no external entities.
    root = ET.fromstring(text)  # noqa: S314
    if root.tag != "{http://httpd.apache.org}manager":
        raise ET.ParseError(f"the root element is {root.tag}")
    for element in root.iterfind("httpd:balancers/httpd:balancer", NS):
        if element.findtext("httpd:name", "", NS) != f"balancer://{balancer}":
            continue
        workers = tuple(
            Worker(
                name=worker.findtext("httpd:name", "", NS),
                route=worker.findtext("httpd:route", "", NS),
                status=worker.findtext("httpd:status", "", NS).strip(),
                busy=_number(worker.findtext("httpd:busy", "", NS)),
            )
            for worker in element.iterfind("httpd:workers/httpd:worker", NS)
        )
        sticky = element.findtext("httpd:stickysession", "", NS).strip()
        return Balancer(element.findtext("httpd:nonce", "", NS), workers, sticky)
    return None


def _number(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


def worker_state(server: str, worker: Worker) -> ServerState:
    flags = worker.status.split()
    if "Dis" in flags or "Stop" in flags:
        admin = AdminState.MAINT
    elif "Drn" in flags:
        admin = AdminState.DRAIN
    else:
        admin = AdminState.READY
    healthy = False if "Err" in flags else True if "Ok" in flags else None
    return ServerState(server, admin, healthy=healthy, sessions=worker.busy, detail=worker.status)


def shown(url: str) -> str:
    """The URL without any user:password in it, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class ApacheBalancer:
    """One balancer (`b`, its name without `balancer://`) of one balancer-manager (`url`, e.g.
    http://lb.example.com/balancer-manager). A server is named by its worker URL or by its route."""

    def __init__(
        self,
        url: str,
        balancer: str,
        *,
        auth: tuple[str, str] | None = None,
        verify: bool | str = True,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url
        self.balancer = balancer
        self.where = f"Apache balancer-manager {shown(url)} balancer://{balancer}"
        # The manager acts only on requests that come from its own page.
        self.client = client or httpx.Client(auth=auth, verify=verify, timeout=timeout)
        self.client.headers["Referer"] = url

    def close(self) -> None:
        self.client.close()

    def state(self, server: str) -> ServerState:
        return worker_state(server, self._worker(self._read(), server))

    def drain(self, server: str) -> None:
        self._change(server, AdminState.DRAIN)

    def maint(self, server: str) -> None:
        self._change(server, AdminState.MAINT)

    def ready(self, server: str) -> None:
        self._change(server, AdminState.READY)

    def describe(self, server: str, target: AdminState) -> str:
        form = urllib.parse.urlencode({"b": self.balancer, "w": server, **FLAGS[target]}) + "&nonce=NONCE"
        return f"curl -e {shown(self.url)} -d '{form}' {shown(self.url)}  # NONCE from the manager's page"

    def warnings(self) -> tuple[str, ...]:
        found = []
        if NOT_PERSISTED in self._request("GET", self.url).text:
            found.append(
                f"{self.where}: balancer-manager changes are not persisted (no BalancerPersist): a restart of "
                "Apache would put drained and disabled workers back in the pool"
            )
        if not self._read().sticky:
            found.append(f"{self.where}: balancer://{self.balancer} has no stickysession: {NOT_STICKY}")
        return tuple(found)

    def _change(self, server: str, target: AdminState) -> None:
        balancer = self._read()
        worker = self._worker(balancer, server)
        form = {"b": self.balancer, "w": worker.name, "nonce": balancer.nonce, **FLAGS[target]}
        self._request("POST", self.url, data=form)
        check_applied(self.where, worker_state(server, self._worker(self._read(), server)), target)

    def _read(self) -> Balancer:
        text = self._request("GET", self.url, params={"xml": "1"}).text
        try:
            balancer = parse_manager_xml(text, self.balancer)
        except ET.ParseError as exc:
            raise LoadBalancerError(
                f"{self.where}: the answer to ?xml=1 is not the manager's XML ({exc}); the manager ignores requests "
                "without a Referer of its own site, or the URL is not a balancer-manager"
            ) from exc
        if balancer is None:
            raise LoadBalancerError(f"{self.where}: the manager has no balancer://{self.balancer}")
        return balancer

    def _worker(self, balancer: Balancer, server: str) -> Worker:
        for worker in balancer.workers:
            if server in (worker.name, worker.route):
                return worker
        known = ", ".join(f"{w.name} (route {w.route or '-'})" for w in balancer.workers) or "none"
        raise LoadBalancerError(f"{self.where}: no worker with URL or route {server!r} (its workers: {known})")

    def _request(
        self, method: str, url: str, *, params: dict[str, str] | None = None, data: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            response = self.client.request(method, url, params=params, data=data)
        except httpx.HTTPError as exc:
            raise LoadBalancerError(f"{self.where}: {method} failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code in (401, 403):
            raise LoadBalancerError(f"{self.where}: HTTP {response.status_code}; check the credentials and access")
        if response.status_code != 200:
            raise LoadBalancerError(f"{self.where}: {method} answered HTTP {response.status_code}")
        return response


if TYPE_CHECKING:  # mypy proves the adapter fills the protocol
    _protocol: type[LoadBalancer] = ApacheBalancer
