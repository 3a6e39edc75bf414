"""Locust users for bench/lb_proof.py: Confluence users who log in, keep their session cookie, read pages and
create pages through the load balancer, each at a steady rate, each for a bounded number of requests.

Run by lb_proof.py as `locust -f bench/locustfile.py --headless ...` with the environment:

    PROOF_USER, PROOF_PASSWORD   the lab's administrator (every user logs in as it)
    PROOF_RATE                   requests per second per user (default 4)
    PROOF_MAX_REQUESTS           requests per user before it stops (default 20000: a bound, not a target)

A request fails (Locust's failure count) on HTTP status >= 400 or a connection error. Only loopback hosts are
accepted: this is a load generator for the lab, never for someone's production.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import urllib.parse

from locust import HttpUser, constant_throughput, events, task
from locust.exception import StopUser

RATE = float(os.environ.get("PROOF_RATE", "4"))
MAX_REQUESTS = int(os.environ.get("PROOF_MAX_REQUESTS", "20000"))
SPACE = "LAB"  # the lab's own space
_numbers = itertools.count()


@events.test_start.add_listener
def _loopback_only(environment: object, **_: object) -> None:
    host = urllib.parse.urlsplit(str(getattr(environment, "host", "") or "")).hostname or ""
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to load {host!r}: only loopback addresses (the lab) are allowed")


class ConfluenceUser(HttpUser):
    wait_time = constant_throughput(RATE)

    def on_start(self) -> None:
        self.sent = 0
        self.client.auth = (os.environ["PROOF_USER"], os.environ["PROOF_PASSWORD"])
        self._get("/", "log in")  # the node's session cookie comes back here and is kept by the session

    def _count(self) -> None:
        self.sent += 1
        if self.sent >= MAX_REQUESTS:
            raise StopUser()

    def _get(self, path: str, name: str) -> None:
        self._count()
        self.client.get(path, name=name, timeout=10)

    @task(3)
    def read_page(self) -> None:
        self._get("/", "read page")

    @task(1)
    def create_page(self) -> None:
        self._count()
        title = f"proof-{os.getpid()}-{next(_numbers)}"
        page = {"type": "page", "title": title, "space": {"key": SPACE}}
        created = self.client.post("/rest/api/content", json=page, name="create page", timeout=10)
        if created.status_code == 200:
            self._get(f"/rest/api/content/{created.json()['id']}", "read created page")
