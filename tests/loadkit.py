"""A small load client for the proofs: logged-in users (each an httpx client keeping its session cookie) reading
pages and creating pages through the load balancer, at a bounded rate, for a bounded time, loopback only.

    with Load(url, auth, users=4, rps=20, seconds=300) as load:
        ...                                   # the upgrade
    load.failed, load.sent, load.errors       # a failure: 5xx or a connection error
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

import httpx

from confluo.waits import SYSTEM_CLOCK, Deadline

SPACE = "LAB"  # the lab's own space


@dataclass
class Load:
    url: str
    auth: tuple[str, str]
    users: int = 4
    rps: float = 20.0
    seconds: float = 600.0  # a bound: the client stops by itself
    sent: int = 0
    failed: int = 0
    created: int = 0  # pages created (200) and read back
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for index in range(self.users):
            thread = threading.Thread(target=self._user, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def _count(self, what: str, response: httpx.Response | None, error: str = "") -> None:
        with self._lock:
            self.sent += 1
            if response is None or response.status_code >= 500:
                self.failed += 1
                self.errors.append(f"{what}: {response.status_code if response is not None else error}")

    def _call(self, client: httpx.Client, method: str, path: str, **kwargs: object) -> httpx.Response | None:
        try:
            response = client.request(method, self.url + path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            self._count(f"{method} {path}", None, type(exc).__name__)
            return None
        self._count(f"{method} {path}", response)
        return response

    def _user(self, index: int) -> None:
        pause = self.users / self.rps  # each user's share of the rate
        deadline = Deadline.after(SYSTEM_CLOCK, self.seconds)
        with httpx.Client(auth=self.auth, timeout=10.0) as client:
            self._call(client, "GET", "/")  # the login: the session cookie comes back here
            for number in itertools.count():
                if self._stop.is_set() or deadline.passed():
                    return
                if number % 4 == 3:
                    page = {"type": "page", "title": f"u{index}-{number}", "space": {"key": SPACE}}
                    created = self._call(client, "POST", "/rest/api/content", json=page)
                    if created is not None and created.status_code == 200:
                        read = self._call(client, "GET", f"/rest/api/content/{created.json()['id']}")
                        with self._lock:
                            self.created += read is not None and read.status_code == 200
                else:
                    self._call(client, "GET", "/")
                self._stop.wait(pause)
