"""SSH transport: one persistent, host-key-verified connection per node (Fabric for ssh_config and jump
hosts, paramiko channels for the commands themselves)."""

from __future__ import annotations

import os
import select
import socket
import time
from pathlib import Path
from typing import Any

import paramiko
from fabric import Config, Connection

from confluo.transport.base import (
    CommandResult,
    CommandTimedOut,
    ConnectionFailed,
    ConnectionLost,
    finished,
    quote_argv,
)

CHUNK = 256 * 1024
KEEPALIVE_SECONDS = 15


class _AcceptNewHostKey(paramiko.MissingHostKeyPolicy):
    """Trust on first use, for one run the user opted into: remember the key in known_hosts."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
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
        client.get_host_keys().clear()
        if self._known_hosts.exists():
            client.get_host_keys().load(str(self._known_hosts))
        policy: paramiko.MissingHostKeyPolicy = (
            _AcceptNewHostKey(self._known_hosts) if self._accept_new else paramiko.RejectPolicy()
        )
        client.set_missing_host_key_policy(policy)
        try:
            connection.open()
        except paramiko.BadHostKeyException as exc:
            raise ConnectionFailed(
                f"{self.node}: the host key of {self._host} does NOT match {self._known_hosts}: refusing to connect"
            ) from exc
        except paramiko.SSHException as exc:
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
            raise ConnectionLost(f"{self.node}: the SSH connection broke during `{command}`: {exc}") from exc
        return finished(self.node, command, status, stdout, stderr, started, check=check)

    def _stream(self, local_path: str, command: str, *, timeout: float, check: bool = True) -> CommandResult:
        """Sends a file to a command's stdin on one channel: no SFTP round trips per block."""
        started = time.monotonic()
        deadline = started + timeout
        transport = self._transport()
        try:
            channel = transport.open_session(timeout=self._connect_timeout)
            channel.exec_command(command)
            with open(local_path, "rb") as handle:
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
        return finished(self.node, command, status, stdout, stderr, started, check=check)

    def upload(self, local_path: str, remote_path: str, *, timeout: float) -> int:
        self._stream(local_path, "cat > " + quote_argv([remote_path]), timeout=timeout)
        return os.path.getsize(local_path)


def _collect(channel: paramiko.Channel, deadline: float, node: str, command: str) -> tuple[bytes, bytes, int]:
    stdout, stderr = bytearray(), bytearray()
    while True:
        while channel.recv_ready():
            stdout += channel.recv(CHUNK)
        while channel.recv_stderr_ready():
            stderr += channel.recv_stderr(CHUNK)
        # OpenSSH may send the exit status before the last output: done only once the output has ended too.
        drained = not channel.recv_ready() and not channel.recv_stderr_ready()
        if drained and channel.exit_status_ready() and (channel.eof_received or channel.closed):
            break
        if channel.closed and not channel.exit_status_ready():
            raise EOFError("channel closed before the command finished")
        if time.monotonic() > deadline:
            channel.close()
            raise CommandTimedOut(f"{node}: `{command}` ran past its deadline")
        select.select([channel], [], [], 0.05)
    status = channel.recv_exit_status()
    if status == -1:  # paramiko's word for "the channel closed without an exit status": the connection broke
        raise EOFError("the connection closed before the command finished")
    return bytes(stdout), bytes(stderr), status
