"""Files and commands on the load balancer's host, through a Transport (`sudo -n` when asked), and the one way
confluo replaces a configuration file there: a draft and a backup, both copies of the file (so they keep its owner
and mode), the draft moved into place, the load balancer's own test run on it, and the previous file moved back
when the test refuses it — so a bad configuration never replaces a good one."""

from __future__ import annotations

from collections.abc import Sequence

from confluo.loadbalancer.base import LoadBalancerError
from confluo.transport.base import CommandResult, Transport, TransportError, quote_argv


class HostFiles:
    def __init__(self, transport: Transport, *, sudo: bool, where: str, timeout: float = 60.0) -> None:
        self.transport = transport
        self.prefix = ("sudo", "-n") if sudo else ()
        self.where = where
        self.timeout = timeout

    def line(self, argv: Sequence[str]) -> str:
        return quote_argv([*self.prefix, *argv])

    def run(self, *argv: str) -> CommandResult:
        return self.run_line(self.line(argv))

    def run_line(self, line: str, *, stdin: bytes | None = None, check: bool = True) -> CommandResult:
        try:
            result = self.transport.run(line, stdin=stdin, timeout=self.timeout, check=False)
        except TransportError as exc:
            raise LoadBalancerError(f"{self.where}: {exc.message}") from exc
        if check and not result.ok:
            raise LoadBalancerError(f"{self.where}: `{line}` exited {result.exit_status}: {result.tail(5)}")
        return result

    def read(self, path: str) -> str:
        return self.run("cat", "--", path).stdout

    def write(self, path: str, text: str) -> None:
        self.run_line(self.line(("tee", "--", path)) + " >/dev/null", stdin=text.encode())

    def replace_tested(self, path: str, text: str, test: Sequence[str], reloads: str) -> str:
        """`path` replaced by `text` once `test` accepts it; returns where the previous file is kept. `reloads`
        names what was not reloaded when it is refused (`nginx`)."""
        draft, backup = f"{path}.confluo-new", f"{path}.confluo-old"
        self.run("cp", "-p", "--", path, draft)
        self.write(draft, text)
        self.run("cp", "-p", "--", path, backup)
        self.run("mv", "-f", "--", draft, path)
        tested = self.run_line(self.line(test), check=False)
        if not tested.ok:
            self.restore(path, backup)
            raise LoadBalancerError(
                f"{self.where}: `{self.line(test)}` refused the configuration (exit {tested.exit_status}); the "
                f"previous file is back and {reloads} was not reloaded:\n{tested.tail(8)}",
                hint=f"fix the {reloads} configuration, then run confluo again",
            )
        return backup

    def restore(self, path: str, backup: str) -> None:
        self.run("mv", "-f", "--", backup, path)

    def discard(self, backup: str) -> None:
        self.run("rm", "-f", "--", backup)
