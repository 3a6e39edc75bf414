"""SSH transport: one persistent, host-key-verified connection per node (Fabric for ssh_config and jump
hosts, paramiko channels for the commands themselves)."""

from __future__ import annotations

import io
import logging
import os
import select
import socket
import time
from pathlib import Path
from typing import Any, BinaryIO

import paramiko
from fabric import Config, Connection

from confluo.errors import brief
from confluo.transport.base import (
    CommandResult,
    CommandTimedOut,
    ConnectionFailed,
    ConnectionLost,
    finished,
    private_file,
    quote_argv,
)
from confluo.transport.known_hosts import KnownHosts, read_known_hosts

CHUNK = 256 * 1024
KEEPALIVE_SECONDS = 15


_log = logging.getLogger(__name__)


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """A host whose key is not known: refused, or (for one run the user opted into) trusted and remembered in
    known_hosts. A key marked @revoked is refused either way."""

    def __init__(self, known_hosts: Path, known: KnownHosts, *, accept_new: bool) -> None:
        self.known_hosts = known_hosts
        self.known = known
        self.accept_new = accept_new

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.known.is_revoked(key):
            raise paramiko.SSHException(f"the host key of {hostname} is marked @revoked in known_hosts")
        if not self.accept_new:
            raise paramiko.SSHException(f"Server {hostname!r} not found in known_hosts")
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with self.known_hosts.open("a") as handle:
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class SshTransport:
    """Runs commands on one node over a single SSH connection, reconnecting when it breaks."""

    def __init__(
        self,
        node: str,
        *,
        host: str,
        port: int | None,
        user: str | None,
        key: Path | None,
        known_hosts: Path,
        connect_timeout: float,
        accept_new_host_keys: bool = False,
    ) -> None:
        self.node = node
        self._host = host
        self._port = port
        self._user = user
        self._key = key
        self._known_hosts = known_hosts
        self._connect_timeout = connect_timeout
        self._accept_new = accept_new_host_keys
        self._connection: Connection | None = None

    # -- connection -------------------------------------------------------------------------------------

    def _connect(self) -> paramiko.Transport:
        connect_kwargs: dict[str, Any] = {"banner_timeout": self._connect_timeout}
        if self._key is not None:
            connect_kwargs["key_filename"] = [str(self._key)]
        connection = Connection(
            self._host,
            user=self._user,
            port=self._port,
            connect_timeout=self._connect_timeout,
            connect_kwargs=connect_kwargs,
            config=Config(),
        )
        # Fabric trusts every host key by default; confluo checks them against known_hosts.
        client = connection.client
        known = read_known_hosts(self._known_hosts)
        for skipped in known.skipped:
            _log.warning("%s", skipped)
        client.get_host_keys().clear()
        for name, key in known.entries:
            if not known.is_revoked(key):
                client.get_host_keys().add(name, key.get_name(), key)
        client.set_missing_host_key_policy(_HostKeyPolicy(self._known_hosts, known, accept_new=self._accept_new))
        try:
            connection.open()
        except paramiko.BadHostKeyException as exc:
            raise ConnectionFailed(
                f"{self.node}: the host key of {self._host} does NOT match {self._known_hosts}: refusing to connect"
            ) from exc
        except paramiko.SSHException as exc:
            if "@revoked" in str(exc):
                raise ConnectionFailed(
                    f"{self.node}: the host key of {self._host} is marked @revoked in {self._known_hosts}: "
                    "refusing to connect"
                ) from exc
            if "not found in known_hosts" in str(exc):
                raise ConnectionFailed(
                    f"{self.node}: {self._host} is not in {self._known_hosts}; add its key, or run once with "
                    "--accept-new-host-keys"
                ) from exc
            raise ConnectionFailed(f"{self.node}: SSH to {self._host} failed: {exc}") from exc
        except (OSError, EOFError) as exc:
            raise ConnectionFailed(f"{self.node}: cannot connect to {self._host}: {exc}") from exc
        transport: paramiko.Transport | None = client.get_transport()
        assert transport is not None
        transport.set_keepalive(KEEPALIVE_SECONDS)
        # Small request/response exchanges dominate; Nagle's algorithm would add ~40 ms to each.
        if isinstance(transport.sock, socket.socket):
            transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connection = connection
        return transport

    def _transport(self) -> paramiko.Transport:
        if self._connection is not None:
            transport: paramiko.Transport | None = self._connection.client.get_transport()
            if transport is not None and transport.is_active():
                return transport
            self.close()
        return self._connect()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _drop_interrupted(self) -> None:
        """Ctrl-C or SIGTERM raised inside paramiko may leave its send lock held, and the next command on this
        connection would wait for it forever: the command that brings the node back gets a new connection."""
        self.close()

    # -- commands ---------------------------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float = 120.0,
        check: bool = True,
    ) -> CommandResult:
        started = time.monotonic()
        transport = self._transport()
        try:
            channel = transport.open_session(timeout=self._connect_timeout)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            stdout, stderr, status = _collect(channel, started + timeout, self.node, command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise ConnectionLost(f"{self.node}: the SSH connection broke during `{brief(command)}`: {exc}") from exc
        except KeyboardInterrupt:
            self._drop_interrupted()
            raise
        return finished(self.node, command, status, stdout, stderr, started, check=check)

    def _stream(
        self, local_path: str, command: str, *, timeout: float, offset: int = 0, check: bool = True
    ) -> CommandResult:
        """Sends a file (from byte `offset`) to a command's stdin on one channel: no SFTP round trips per block."""
        started = time.monotonic()
        deadline = started + timeout
        transport = self._transport()
        try:
            channel = transport.open_session(timeout=self._connect_timeout)
            channel.exec_command(command)
            with open(local_path, "rb") as handle:
                handle.seek(offset)
                while block := handle.read(CHUNK):
                    if time.monotonic() > deadline:
                        channel.close()
                        raise CommandTimedOut(f"{self.node}: sending {local_path} ran past {timeout:.0f} s")
                    channel.sendall(block)
            channel.shutdown_write()
            stdout, stderr, status = _collect(channel, deadline, self.node, command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise ConnectionLost(f"{self.node}: the SSH connection broke while sending {local_path}: {exc}") from exc
        except KeyboardInterrupt:
            self._drop_interrupted()
            raise
        return finished(self.node, command, status, stdout, stderr, started, check=check)

    def download(self, command: str, local_path: str, *, timeout: float) -> CommandResult:
        started = time.monotonic()
        transport = self._transport()
        try:
            channel = transport.open_session(timeout=self._connect_timeout)
            channel.exec_command(command)
            channel.shutdown_write()
            with private_file(local_path) as out:
                size, stderr = _drain_into(channel, out, started + timeout, self.node, command)
            status = channel.recv_exit_status()
            if status == -1:  # as in _collect: the connection broke
                raise EOFError("the connection closed before the command finished")
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise ConnectionLost(f"{self.node}: the SSH connection broke during `{brief(command)}`: {exc}") from exc
        return finished(self.node, command, status, str(size).encode(), stderr, started, check=False)

    def upload(self, local_path: str, remote_path: str, *, timeout: float, offset: int = 0) -> int:
        redirect = ">> " if offset else "> "
        self._stream(local_path, "cat " + redirect + quote_argv([remote_path]), timeout=timeout, offset=offset)
        return os.path.getsize(local_path) - offset


def _drain_into(
    channel: paramiko.Channel, out: BinaryIO, deadline: float, node: str, command: str
) -> tuple[int, bytes]:
    """A command's stdout written to `out` as it arrives (never whole in memory); returns its size and stderr."""
    size, stderr = 0, bytearray()
    while True:
        while channel.recv_ready():
            block = channel.recv(CHUNK)
            out.write(block)
            size += len(block)
        while channel.recv_stderr_ready():
            stderr += channel.recv_stderr(CHUNK)
        # OpenSSH may send the exit status before the last output: done only once the output has ended too.
        drained = not channel.recv_ready() and not channel.recv_stderr_ready()
        if drained and channel.exit_status_ready() and (channel.eof_received or channel.closed):
            return size, bytes(stderr)
        if channel.closed and not channel.exit_status_ready():
            raise EOFError("channel closed before the command finished")
        if time.monotonic() > deadline:
            channel.close()
            raise CommandTimedOut(f"{node}: `{brief(command)}` ran past its deadline")
        select.select([channel], [], [], 0.05)


def _collect(channel: paramiko.Channel, deadline: float, node: str, command: str) -> tuple[bytes, bytes, int]:
    stdout = io.BytesIO()
    _, stderr = _drain_into(channel, stdout, deadline, node, command)
    status = channel.recv_exit_status()
    if status == -1:  # paramiko's word for "the channel closed without an exit status": the connection broke
        raise EOFError("the connection closed before the command finished")
    return stdout.getvalue(), stderr, status
