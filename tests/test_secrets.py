import copy
import os
import pickle
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from confluo.errors import ConfluoError, ExitCode
from confluo.secrets import MASK, Masker, Secret, SecretError, SecretRef

SECRET = "hunter2-s3cr3t"
QUOTED = "it's secret"  # shell-quoted as 'it'"'"'s secret', which does not contain the value itself


@pytest.mark.parametrize(
    "render",
    [repr, str, lambda s: f"{s}", lambda s: f"{s!r}", lambda s: f"{s:>30}", lambda s: format(s), lambda s: str([s])],
    ids=["repr", "str", "f-string", "f-string-repr", "format-spec", "format", "in-a-list"],
)
def test_secret_never_shows_its_value(render: Callable[[Secret], str]) -> None:
    shown = render(Secret(SECRET))
    assert SECRET not in shown
    assert MASK in shown


def test_secret_reveals_its_value_only_when_asked() -> None:
    assert Secret(SECRET).reveal() == SECRET


def test_secret_cannot_be_pickled_but_can_be_copied() -> None:
    secret = Secret(SECRET)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert copy.deepcopy(secret).reveal() == SECRET


@pytest.mark.parametrize(
    ("secrets", "text", "expected"),
    [
        ([SECRET], f"curl -u admin:{SECRET} https://x", f"curl -u admin:{MASK} https://x"),
        ([SECRET], f"{SECRET} and again {SECRET}", f"{MASK} and again {MASK}"),
        (["abc", "abcdef"], "token=abcdef", f"token={MASK}"),  # the longer secret is masked whole
        ([QUOTED], f"echo {shlex.quote(QUOTED)}", f"echo {MASK}"),
        (["p@ss/word"], "https://u:p%40ss%2Fword@host/", f"https://u:{MASK}@host/"),
        (["", SECRET], "nothing to hide", "nothing to hide"),
    ],
    ids=["once", "every-occurrence", "longest-first", "shell-quoted", "url-encoded", "empty-ignored"],
)
def test_masker_masks_every_form_of_every_secret(secrets: list[str], text: str, expected: str) -> None:
    masker = Masker(Secret(value) for value in secrets)
    assert masker.mask(text) == expected


def test_masker_masks_secrets_added_later() -> None:
    masker = Masker()
    assert masker.mask(SECRET) == SECRET
    masker.add(Secret(SECRET))
    assert masker.mask(f"x{SECRET}y") == f"x{MASK}y"


def _write(path: Path, content: bytes, mode: int) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_resolve_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFLUO_TEST_PASSWORD", SECRET)
    assert SecretRef("password", "env", "CONFLUO_TEST_PASSWORD").resolve().reveal() == SECRET


@pytest.mark.parametrize("content", [f"{SECRET}\n".encode(), f"{SECRET}\r\nsecond line\n".encode(), SECRET.encode()])
def test_resolve_from_file_reads_the_first_line(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path / "password", content, 0o600)
    assert SecretRef("password", "file", str(path)).resolve().reveal() == SECRET


def test_resolve_from_a_group_readable_file_is_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path / "password", SECRET.encode(), 0o640)
    assert SecretRef("password", "file", str(path)).resolve().reveal() == SECRET


def test_resolve_from_command_reads_the_first_line_of_its_output() -> None:
    ref = SecretRef("token", "command", f"printf '{SECRET}\\nsecond\\n'")
    assert ref.resolve().reveal() == SECRET


def _python_command(code: str) -> str:
    return shlex.join([sys.executable, "-c", code])


# The secret is where the reference points, so a careless error message could quote it.
_PRINT_SECRET_THEN_FAIL = _python_command("import os, sys; print(os.environ['LEAK']); sys.exit(3)")


@pytest.mark.parametrize(
    ("via", "source", "expected"),
    [
        ("env", "CONFLUO_TEST_UNSET", "password_env (CONFLUO_TEST_UNSET): the environment variable is not set"),
        ("env", "CONFLUO_TEST_EMPTY", "password_env (CONFLUO_TEST_EMPTY): the environment variable is empty"),
        ("file", "{tmp}/world-readable", "the file is readable by every user (mode 0644)"),
        ("file", "{tmp}/missing", "cannot read the file: No such file or directory"),
        ("file", "{tmp}", "cannot read the file: a directory, not a regular file"),
        ("file", "{tmp}/fifo", "cannot read the file: a named pipe (FIFO), not a regular file"),
        ("file", "/dev/zero", "cannot read the file: a device or socket, not a regular file"),
        ("file", "{tmp}/huge", "the file is larger than 64 KiB; it cannot be a secret"),
        ("command", "yes", "the command printed more than 64 KiB"),
        ("file", "{tmp}/empty", "the first line of the file is empty"),
        ("file", "{tmp}/binary", "the file is not valid UTF-8 text"),
        ("command", _PRINT_SECRET_THEN_FAIL, "the command exited with status 3"),
        ("command", "confluo-no-such-command --flag", "command not found: confluo-no-such-command"),
        ("command", "printf ''", "the first line of the command's output is empty"),
        ("command", "'unclosed", "cannot split the command into words"),
        ("command", "   ", "the command is empty"),
    ],
)
def test_resolve_failures_name_the_reference_but_never_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via: str, source: str, expected: str
) -> None:
    monkeypatch.delenv("CONFLUO_TEST_UNSET", raising=False)
    monkeypatch.setenv("CONFLUO_TEST_EMPTY", "")
    monkeypatch.setenv("LEAK", SECRET)
    _write(tmp_path / "world-readable", SECRET.encode(), 0o644)
    _write(tmp_path / "empty", b"", 0o600)
    _write(tmp_path / "binary", b"\xff" + SECRET.encode(), 0o600)
    _write(tmp_path / "huge", b"x" * (65 * 1024), 0o600)
    os.mkfifo(tmp_path / "fifo", 0o600)  # nobody writes to it: reading it would wait forever
    source = source.format(tmp=tmp_path)

    with pytest.raises(SecretError) as raised:
        SecretRef("password", via, source).resolve()  # type: ignore[arg-type]

    error = raised.value
    assert expected in str(error)
    assert f"cluster.credentials.password_{via}" in str(error)
    for shown in (str(error), repr(error), error.hint or ""):
        assert SECRET not in shown
    assert error.exit_code is ExitCode.USAGE
    assert isinstance(error, ConfluoError)


def test_world_readable_file_error_says_how_to_fix_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "password", SECRET.encode(), 0o604)
    with pytest.raises(SecretError) as raised:
        SecretRef("password", "file", str(path)).resolve()
    assert raised.value.hint == f"chmod 600 {path}"


def test_command_that_hangs_is_stopped_at_the_timeout() -> None:
    with pytest.raises(SecretError, match=r"did not finish within 0.2 s"):
        SecretRef("token", "command", "sleep 10").resolve(command_timeout_seconds=0.2)


def test_command_runs_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "created-by-shell"
    ref = SecretRef("token", "command", f"echo {SECRET}; touch {marker}")
    # Without a shell `;` is just an argument to echo, so nothing else runs.
    assert ref.resolve().reveal() == f"{SECRET}; touch {marker}"
    assert not marker.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path / "password", SECRET.encode(), 0o000)
    with pytest.raises(SecretError, match="cannot read the file: Permission denied"):
        SecretRef("password", "file", str(path)).resolve()


def test_a_secret_command_that_times_out_is_killed_with_what_it_started(tmp_path: Path) -> None:
    # The shell leaves a child holding stdout open: killing only the shell would leave confluo waiting.
    script = tmp_path / "slow"
    script.write_text("#!/bin/sh\nsleep 30 &\nsleep 30\n")
    script.chmod(0o700)
    with pytest.raises(SecretError) as raised:
        SecretRef("token", "command", str(script)).resolve(command_timeout_seconds=0.5)
    assert "did not finish within 0.5 s" in str(raised.value)
