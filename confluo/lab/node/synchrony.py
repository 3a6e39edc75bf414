"""The lab's standalone Synchrony: what runs when start-synchrony.sh starts ``python3 synchrony-standalone.jar``.

Each release's jar (a zip: a manifest naming its version, and this module with a ``__main__.py``) is built by
``confluo.lab.tarball`` and shipped in the release at ``confluence/WEB-INF/packages/``; the node program puts it
into its local home at start, as Confluence does. Standard library only, and no import of its siblings: in the
jar this module is the top-level ``synchrony_lab``.

Like Synchrony it takes a while to start and only then listens: until then its heartbeat is unreachable; from
then on ``GET <context>/heartbeat`` answers 200 "OK"; on SIGTERM it stops listening and exits. The lab's fault
``fail-upgrade`` (a file the lab writes, naming the version set up) makes a jar of any other version exit at
start: the new jar never comes up on that node, the old one still does.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FAIL_UPGRADE = "fail-upgrade"


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} [synchrony] {message}", flush=True)


def properties(argv: Sequence[str]) -> dict[str, str]:
    """The -Dname=value arguments, as the JVM would read them."""
    found = {}
    for argument in argv:
        if argument.startswith("-D") and "=" in argument:
            name, _, value = argument[2:].partition("=")
            found[name] = value
    return found


def refusal(fault_file: str, version: str) -> str | None:
    """Why this jar will not start on this node (the fail-upgrade fault), or None."""
    try:
        fault = json.loads(Path(fault_file).read_text())
    except (OSError, ValueError):
        return None
    if fault.get("kind") == FAIL_UPGRADE and fault.get("keep") != version:
        return f"fault injected: {FAIL_UPGRADE} (only the jar of {fault.get('keep')} starts here)"
    return None


class _Heartbeat(BaseHTTPRequestHandler):
    server_version = "Synchrony"
    sys_version = ""
    path_prefix = "/synchrony"

    def do_GET(self) -> None:
        if self.path.split("?")[0].rstrip("/") == f"{self.path_prefix}/heartbeat":
            self._reply(200, b"OK")
        else:
            self._reply(404, b"Not found")

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


def main(argv: Sequence[str] | None = None, *, version: str = "unknown") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--version" in argv:
        print(f"Synchrony (lab build) for Confluence {version}")
        return 0
    settings = properties(argv)
    bind, port = settings.get("synchrony.bind", "127.0.0.1"), int(settings.get("synchrony.port", "8091"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log(f"starting Synchrony {version} on {bind}:{port}")
    refused = refusal(settings.get("lab.fault.file", ""), version)
    if refused:
        log(f"cannot start: {refused}")
        return 1
    if stop.wait(float(settings.get("lab.start.seconds", "0.5"))):
        return 0
    context = settings.get("synchrony.context.path", "/synchrony")
    handler = type("Heartbeat", (_Heartbeat,), {"path_prefix": context})
    try:
        server = ThreadingHTTPServer((bind, port), handler)
    except OSError as exc:
        log(f"cannot listen on {bind}:{port}: {exc}")
        return 1
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    log(f"Synchrony {version} is up: {context}/heartbeat answers OK")
    while not stop.wait(0.2):  # a timed wait: the signal handler runs between waits
        pass
    log("SIGTERM: stopping")
    server.shutdown()
    server.server_close()
    return 0
