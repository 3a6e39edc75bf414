"""The machine side of the lab's "hosts": login users, sudoers, one real sshd per node, known_hosts.

Also the small process helpers the rest of the lab uses: every process the lab stops is stopped by pid,
after checking that the pid still runs the program the lab started (pids get reused).
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
SSH_PORT = 22
# State shared by every lab on this machine (slots, the accounts lock) lives here.
LAB_STATE_DIR = Path("/tmp/confluo-lab-slots")
MODE_ENV = "CONFLUO_LAB_MODE"
# What a node user may run as root without a password: exactly the README's sudoers line, so a command the
# upgrade starts to need as root fails in the lab as it would on a node set up from the README.
SUDO_COMMANDS = ("mkdir", "tar", "cp", "ln", "mv", "chown", "rm", "tee")


class LabError(Exception):
    """Something the lab could not do; the message says what and, where it can, what to do about it."""


# ---------------------------------------------------------------------------------------------- commands


def run(argv: Sequence[str | Path], *, input_text: str | None = None, check: bool = True) -> str:
    """Run a command; on failure raise LabError with the command and its stderr."""
    args = [str(a) for a in argv]
    done = subprocess.run(args, input=input_text, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise LabError(f"`{' '.join(args)}` failed with exit code {done.returncode}: {detail}")
    return done.stdout


def forced_local() -> bool:
    return os.environ.get(MODE_ENV, "").strip().lower() == "local"


def ssh_supported() -> bool:
    """Real users, sudo and sshd need root and OpenSSH's server; otherwise the lab runs in local mode."""
    return os.geteuid() == 0 and SSHD.is_file() and not forced_local()


# --------------------------------------------------------------------------------------------- processes


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def process_cmdline(pid: int) -> str:
    """The command line of a live process, '' if it is gone (a zombie has an empty one too)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def pid_alive(pid: int) -> bool:
    return process_cmdline(pid) != ""


def runs(pid: int | None, marker: str) -> bool:
    """Whether `pid` is alive and still the process the lab started (its command line names `marker`)."""
    return pid is not None and pid > 0 and marker in process_cmdline(pid)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_until_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait up to `timeout` seconds for the processes to exit; return the ones still alive."""
    remaining = list(pids)
    deadline = time.monotonic() + timeout
    while remaining:
        remaining = [pid for pid in remaining if pid_alive(pid)]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return remaining


def terminate(pids: Iterable[int], grace: float) -> None:
    """SIGTERM, then SIGKILL whatever ignored it for `grace` seconds (a hung node does)."""
    targets = [pid for pid in set(pids) if pid_alive(pid)]
    for pid in targets:
        _signal(pid, signal.SIGTERM)
    for pid in wait_until_gone(targets, grace):
        _signal(pid, signal.SIGKILL)
    wait_until_gone(targets, 2.0)


def _proc_status(pid: str) -> dict[str, str]:
    """The first value of each field of /proc/PID/status ({} if the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {key: rest.split()[0] for key, _, rest in (line.partition(":") for line in lines) if rest.split()}


def _live_processes_where(field: str, value: int) -> list[int]:
    """Pids whose status `field` equals `value`, zombies excluded (they are dead; init reaps them)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        status = _proc_status(pid)
        if status.get(field) == str(value) and status.get("State") != "Z":
            pids.append(int(pid))
    return pids


def processes_of_uid(uid: int) -> list[int]:
    return _live_processes_where("Uid", uid)


def children_of(pid: int) -> list[int]:
    return _live_processes_where("PPid", pid)


def wait_for_port(address: str, port: int, timeout: float) -> bool:
    """Whether something accepts TCP connections on address:port within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------------------- accounts


def group_name(slot: int) -> str:
    return f"cl{slot}"


def user_name(slot: int, node_index: int) -> str:
    return f"cl{slot}n{node_index}"


def synchrony_user_name(slot: int, index: int) -> str:
    return f"cl{slot}s{index}"


def ensure_state_dir() -> Path:
    """The machine-wide folder of the labs; sticky and world-writable like /tmp, for local-mode labs of any user."""
    LAB_STATE_DIR.mkdir(parents=True, exist_ok=True)
    if LAB_STATE_DIR.stat().st_uid == os.geteuid() and stat.S_IMODE(LAB_STATE_DIR.stat().st_mode) != 0o1777:
        LAB_STATE_DIR.chmod(0o1777)
    return LAB_STATE_DIR


@contextlib.contextmanager
def accounts_lock() -> Iterator[None]:
    """Serialize useradd/userdel/groupadd between labs started in parallel (they lock /etc/passwd)."""
    ensure_state_dir()
    with (LAB_STATE_DIR / "accounts.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def lab_users(slot: int) -> list[str]:
    """Accounts of slot `slot` that exist now (a crashed lab may have left some behind)."""
    pattern = re.compile(rf"cl{slot}[ns]\d+")
    return sorted(entry.pw_name for entry in pwd.getpwall() if pattern.fullmatch(entry.pw_name))


def create_group(slot: int) -> None:
    name = group_name(slot)
    with accounts_lock():
        if not group_exists(name):
            run(["groupadd", name])


def create_user(name: str, group: str, public_key: str) -> Path:
    """A login user with a usable but password-less account and the lab's key; returns its home."""
    with accounts_lock():
        run(["useradd", "--create-home", "--shell", "/bin/bash", "--gid", group, name])
        # useradd leaves the password as "!" (locked); with UsePAM no, sshd refuses locked accounts.
        run(["usermod", "-p", "*", name])
    account = pwd.getpwnam(name)
    home = Path(account.pw_dir)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized_keys = ssh_dir / "authorized_keys"
    authorized_keys.write_text(public_key.strip() + "\n")
    authorized_keys.chmod(0o600)
    for path in (ssh_dir, authorized_keys):
        os.chown(path, account.pw_uid, account.pw_gid)
    return home


def kill_user_processes(name: str) -> None:
    """SIGKILL every process of the lab's user `name` (found by uid; they are all the lab's)."""
    uid = pwd.getpwnam(name).pw_uid
    deadline = time.monotonic() + 3.0
    while (pids := processes_of_uid(uid)) and time.monotonic() < deadline:
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        wait_until_gone(pids, 0.5)


def remove_user(name: str) -> None:
    if not user_exists(name):
        return
    kill_user_processes(name)
    with accounts_lock():
        # userdel warns (and still succeeds) when the user has no mail spool; exit 12 = home not removed.
        run(["userdel", "--remove", name], check=False)
    if user_exists(name):
        raise LabError(f"could not remove user {name}: run `userdel --remove {name}` as root")


def remove_group(slot: int) -> None:
    name = group_name(slot)
    with accounts_lock():
        if group_exists(name):
            run(["groupdel", name], check=False)


def group_id(slot: int) -> int:
    return grp.getgrnam(group_name(slot)).gr_gid


# ----------------------------------------------------------------------------------------------- sudoers


def sudoers_path(slot: int) -> Path:
    return Path(f"/etc/sudoers.d/confluo-lab-{slot}")


def sudo_command_paths() -> list[str]:
    """Absolute paths of the allowed commands as they exist here (sudoers matches the exact path)."""
    paths = []
    for command in SUDO_COMMANDS:
        found = next((d / command for d in (Path("/usr/bin"), Path("/bin")) if (d / command).is_file()), None)
        if found is None:
            raise LabError(f"cannot write sudoers: no /usr/bin/{command} nor /bin/{command} on this machine")
        paths.append(str(found))
    return paths


def sudoers_text(slot: int, users: Sequence[str], commands: Sequence[str]) -> str:
    alias = f"CONFLUO_LAB_{slot}"
    return (
        f"# confluo lab, slot {slot}: what an upgrade needs as root. Removed by `confluo lab down`.\n"
        f"User_Alias {alias}_USERS = {', '.join(users)}\n"
        f"Cmnd_Alias {alias}_COMMANDS = {', '.join(commands)}\n"
        f"{alias}_USERS ALL=(root) NOPASSWD: {alias}_COMMANDS\n"
    )


def install_sudoers(slot: int, users: Sequence[str]) -> Path:
    """Validate the file with visudo before it goes live: a broken sudoers.d file breaks sudo for everyone."""
    text = sudoers_text(slot, users, sudo_command_paths())
    target = sudoers_path(slot)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=".confluo-lab-", delete=False) as draft:
        draft.write(text)
    draft_path = Path(draft.name)
    try:
        draft_path.chmod(0o440)
        run(["visudo", "-c", "-q", "-f", draft_path])
        draft_path.replace(target)
    finally:
        draft_path.unlink(missing_ok=True)
    return target


def remove_sudoers(slot: int) -> None:
    sudoers_path(slot).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ keys and sshd


def generate_key(private_key: Path, comment: str) -> Path:
    """An ed25519 key pair without passphrase; returns the public key's path."""
    private_key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in (private_key, private_key.with_name(private_key.name + ".pub")):
        stale.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", private_key])
    return private_key.with_name(private_key.name + ".pub")


@dataclass(frozen=True)
class Sshd:
    """One node's sshd: everything it needs lives in `directory` (absolute paths: relative ones fail)."""

    directory: Path
    address: str
    user: str
    port: int = SSH_PORT

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"

    @property
    def host_key(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"

    @property
    def host_public_key(self) -> Path:
        return self.directory / "ssh_host_ed25519_key.pub"

    @property
    def pid_file(self) -> Path:
        return self.directory / "sshd.pid"

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    def pid(self) -> int | None:
        """The listener's pid if it is running (and is this sshd, not a reused pid)."""
        pid = read_pid(self.pid_file)
        return pid if runs(pid, str(self.config)) else None


def sshd_config_text(sshd: Sshd) -> str:
    return "\n".join(
        [
            f"# sshd of lab node {sshd.address}, written by confluo lab",
            f"ListenAddress {sshd.address}:{sshd.port}",
            f"HostKey {sshd.host_key}",
            f"PidFile {sshd.pid_file}",
            "AuthorizedKeysFile .ssh/authorized_keys",
            f"AllowUsers {sshd.user}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            # PAM would need a real login stack; the account is unlocked with usermod -p '*' instead.
            "UsePAM no",
            "PrintMotd no",
            "PrintLastLog no",
            # confluo opens one connection per node with several channels; leave it room.
            "MaxSessions 32",
            "MaxStartups 64:30:128",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            "",
        ]
    )


def prepare_sshd(sshd: Sshd) -> None:
    """Host key and config, validated with `sshd -t` so a bad config fails here, not at first login."""
    sshd.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    generate_key(sshd.host_key, f"lab-host-{sshd.address}")
    sshd.config.write_text(sshd_config_text(sshd))
    _ensure_privsep_dir()
    run([SSHD, "-t", "-f", sshd.config])


def _ensure_privsep_dir() -> None:
    privsep = Path("/run/sshd")
    privsep.mkdir(mode=0o755, exist_ok=True)
    privsep.chmod(0o755)


def start_sshd(sshd: Sshd, timeout: float = 5.0) -> int:
    """Start the node's sshd (it daemonizes) and wait until its port accepts connections."""
    if (running := sshd.pid()) is not None:
        return running
    sshd.pid_file.unlink(missing_ok=True)
    _ensure_privsep_dir()
    run([SSHD, "-f", sshd.config, "-E", sshd.log])
    if not wait_for_port(sshd.address, sshd.port, timeout):
        raise LabError(f"sshd of {sshd.address} does not accept connections on port {sshd.port}; see {sshd.log}")
    pid = _wait_for_pid(sshd, timeout)
    if pid is None:
        raise LabError(f"sshd for {sshd.address} wrote no pid file {sshd.pid_file}; see {sshd.log}")
    return pid


def _wait_for_pid(sshd: Sshd, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while (pid := sshd.pid()) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid


def stop_sshd(sshd: Sshd, *, sessions: bool = False) -> None:
    """Stop the listener (like `systemctl stop ssh`: open sessions survive unless `sessions`)."""
    pid = sshd.pid()
    if pid is None:
        return
    session_pids = children_of(pid) if sessions else []
    terminate([pid, *session_pids], grace=1.0)
    sshd.pid_file.unlink(missing_ok=True)


def known_hosts_line(address: str, host_public_key: Path) -> str:
    key_type, key_data = host_public_key.read_text().split()[:2]
    return f"{address} {key_type} {key_data}"


def write_known_hosts(path: Path, sshds: Iterable[Sshd]) -> None:
    lines = [known_hosts_line(s.address, s.host_public_key) for s in sshds]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)


def chown_tree(path: Path, user: str | None, group: str | None = None) -> None:
    """chown -R by names (the lab created the accounts, so names are what it knows); -1 keeps a field."""
    uid = -1 if user is None else pwd.getpwnam(user).pw_uid
    gid = -1 if group is None else grp.getgrnam(group).gr_gid
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for entry in (*dirs, *files):
            os.lchown(Path(root, entry), uid, gid)
