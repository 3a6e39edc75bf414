"""The command line through click's CliRunner, with an Env whose ports are the fakes: every exit code of the
table, and what each says, in milliseconds and without a terminal, root or network."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from fakes import SOURCE, TARGET, FakeSite

from confluo.cli.env import Env, ReaderSafe
from confluo.cli.main import cli
from confluo.errors import ExitCode


class CurrentStdout(io.StringIO):
    """sys.stdout as it is when written to: CliRunner swaps it in only once the command runs."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def confluo(site: FakeSite, *args: str, tty: bool = False, stdin: str | None = None) -> tuple[int, str, str]:
    env = Env(stdin_isatty=tty, stdout_isatty=False, stdout=CurrentStdout(), ports=site.ports())
    result = CliRunner().invoke(cli, [*args, "-i", str(site.inventory)], obj=env, input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_upgrade_with_yes_succeeds_and_says_so(site: FakeSite) -> None:
    code, out, _ = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.SUCCESS and "done: pre-staging" in out
    assert set(site.versions().values()) == {TARGET}


def test_upgrade_without_yes_and_without_a_terminal_changes_nothing(site: FakeSite) -> None:
    code, _, err = confluo(site, "upgrade")
    assert code == ExitCode.NEEDS_CONFIRMATION and "--yes" in err
    assert set(site.versions().values()) == {SOURCE} and site.api.calls == []


def test_ctrl_d_at_the_prompt_is_a_no(site: FakeSite) -> None:
    code, _, _ = confluo(site, "upgrade", tty=True, stdin="")
    assert code == ExitCode.NEEDS_CONFIRMATION and site.api.calls == []


def test_status_against_an_unreachable_api_says_nothing_was_changed(site: FakeSite) -> None:
    site.api.unreachable = True
    code, _, err = confluo(site, "status")
    assert code == ExitCode.REFUSED and "nothing was changed" in err and "connection refused" in err


def test_plan_refusal_exits_3_with_every_reason(site: FakeSite) -> None:
    site.host("node2").home.rename(site.host("node2").home.with_name("gone"))
    code, _, err = confluo(site, "plan")
    assert code == ExitCode.REFUSED and "node2: the local home" in err


def test_a_failed_start_is_rolled_back_and_exits_6_with_a_final_json_event(site: FakeSite) -> None:
    site.load.update(node1=0, node2=1, node3=2)
    site.fail_start("node1")
    code, out, err = confluo(site, "upgrade", "--yes", "--json")
    last = json.loads(out.splitlines()[-1])
    assert code == ExitCode.ROLLED_BACK and (last["event"], last["result"]) == ("run_finished", "rolled_back")
    assert "node1" in err and set(site.versions().values()) == {SOURCE} and not site.api.upgrade_mode


def test_a_node_active_on_the_new_release_that_serves_no_page_is_rolled_back_before_it_takes_users(
    site: FakeSite,
) -> None:
    """/status RUNNING and ACTIVE in the cluster are not enough (seed 000: "confirm that you can log in and view
    pages before continuing"): node1's new release answers 500 to every page read, so it goes back."""
    lb = site.with_balancer()
    site.load.update(node1=0, node2=1, node3=2)
    site.pages_broken.add("node1")
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.ROLLED_BACK, err
    assert "node1: ACTIVE on 9.2.14, but no page can be viewed on its own URL for 60 s (HTTP 500)" in err
    assert set(site.versions().values()) == {SOURCE} and not site.api.upgrade_mode
    assert [what for server, what in lb.changes if server == "node1"][-1] == "ready"  # back, on the old release
    ready_while_broken = [c for c in lb.changes if c == ("node1", "ready")]
    assert len(ready_while_broken) == 1, lb.changes  # never put in the pool on the release that serves no page
    code, out, _ = confluo(site, "plan")
    assert code == 0 and "a page is read and rendered on http://" in out and "expand=homepage" in out


def test_plan_json_lists_each_step_with_its_commands(site: FakeSite) -> None:
    code, out, _ = confluo(site, "plan", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["target_version"] == TARGET
    stops = [s for s in plan["steps"] if s["step"] == "stop"]
    assert [s["node"] for s in stops] == ["node1", "node2", "node3"]
    assert all(s["commands"][0].endswith("/current/bin/stop-confluence.sh") for s in stops)


def test_cancel_turns_upgrade_mode_off_while_no_node_is_upgraded(site: FakeSite) -> None:
    site.api.start_upgrade()
    code, out, _ = confluo(site, "cancel", "--yes")
    assert code == 0 and "cancel: done" in out and not site.api.upgrade_mode


def test_cancel_refuses_from_mixed_and_says_what_to_do(site: FakeSite) -> None:
    site.api.start_upgrade()
    site.fail_start("node1")  # node1 will run the new version in ERROR: MIXED
    host = site.host("node1")
    host.kill()
    (host.base / "current").unlink()
    from fakes import install_tree

    install_tree(host.base / TARGET, TARGET)
    (host.base / "current").symlink_to(host.base / TARGET)
    site.start_all()
    code, _, err = confluo(site, "cancel", "--yes")
    assert code == ExitCode.REFUSED and "MIXED" in err and "confluo upgrade" in err and site.api.upgrade_mode


def test_finalize_after_failed_upgrade_tasks_needs_retry_and_then_succeeds(site: FakeSite) -> None:
    site.finalize_fails = True
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES and "UPGRADE_TASKS_FAILED" in err
    site.finalize_fails = False
    code, _, err = confluo(site, "finalize", "--yes")
    assert code == ExitCode.REFUSED and "--retry" in err
    code, _, _ = confluo(site, "finalize", "--retry", "--yes")
    assert code == 0 and site.api.calls[-1] == "retry" and not site.api.upgrade_mode


def test_status_says_where_an_unfinished_run_stopped_and_what_continues_it(site: FakeSite) -> None:
    site.load.update(node1=0, node2=1, node3=2)
    site.fail_start("node2")  # node1 upgraded, node2 rolled back: upgrade mode stays on
    code, _, _ = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES
    code, out, _ = confluo(site, "status", "--json")
    run = json.loads(out)["unfinished_run"]
    assert code == 0 and (run["source_version"], run["target_version"]) == (SOURCE, TARGET)
    assert run["next"] == f"confluo upgrade -i INVENTORY --to {TARGET}"
    site.failing.clear()
    code, _, _ = confluo(site, "upgrade", "--yes")
    assert code == 0 and set(site.versions().values()) == {TARGET}
    assert "unfinished_run" not in json.loads(confluo(site, "status", "--json")[1])


def test_a_load_balancer_answering_503_to_the_approval_for_a_while_does_not_halt_the_upgrade(site: FakeSite) -> None:
    site.api.gateway_errors["approve"] = 6  # every server failing its health checks for ~10 s
    code, out, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.SUCCESS, err
    assert "HTTP 503: No server is available; trying again" in out + err
    assert site.api.calls.count("approve") == 7 and not site.api.upgrade_mode
    assert set(site.versions().values()) == {TARGET}


def test_a_cluster_api_that_never_takes_the_approval_halts_after_the_deadline_saying_what_answered(
    site: FakeSite,
) -> None:
    site.api.gateway_errors["approve"] = 10**6
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES
    assert "approve: HTTP 503: No server is available (tried for" in err and "whether the cluster API answers" in err
    assert "start" not in site.api.calls[1:] and site.api.upgrade_mode, "upgrade mode on, every node on the new release"
    assert set(site.versions().values()) == {TARGET}
    site.api.gateway_errors.clear()
    code, _, _ = confluo(site, "upgrade", "--yes")
    assert code == 0 and not site.api.upgrade_mode


def test_failed_upgrade_tasks_are_shown_and_the_same_upgrade_again_retries_them(site: FakeSite) -> None:
    site.finalize_fails = True
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES and "FakeUpgradeTask: node1's tasks failed" in err
    assert "confluo finalize --retry" in err and "POST /rest/zdu/retryUpgrade retries" not in err
    code, _, err = confluo(site, "rollback", "--yes")
    assert code == ExitCode.REFUSED and "upgrade tasks have started" in err
    site.finalize_fails = False
    code, _, _ = confluo(site, "upgrade", "--yes")
    assert code == 0 and site.api.calls[-1] == "retry" and not site.api.upgrade_mode


def test_a_log_file_that_cannot_be_written_is_refused_before_any_host_is_contacted(site: FakeSite) -> None:
    for unusable in (site.dir, site.inventory / "x"):  # a folder; a file under a file
        code, _, err = confluo(site, "upgrade", "--yes", "--log-file", str(unusable))
        assert code == ExitCode.USAGE, err
        assert f"the log file {unusable} cannot be written" in err and "Traceback" not in err
    assert set(site.versions().values()) == {SOURCE} and site.api.calls == []


def test_an_invalid_run_leaves_no_log_file(site: FakeSite) -> None:
    logs = site.dir / "state" / "logs"
    text = site.inventory.read_text()
    site.inventory.write_text(text.replace("nodes:", "colour: blue\nnodes:", 1))
    code, _, _ = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.USAGE and not (logs.exists() and any(logs.iterdir()))
    site.inventory.write_text(text)
    assert confluo(site, "upgrade")[0] == ExitCode.NEEDS_CONFIRMATION
    assert [path.name.endswith(f"-{os.getpid()}.log") for path in logs.iterdir()] == [True]


def test_a_state_folder_that_cannot_be_made_is_a_clear_error(site: FakeSite) -> None:
    blocker = site.dir / "not-a-folder"
    blocker.write_text("")
    ports = site.ports()
    env = Env(stdin_isatty=False, stdout_isatty=False, stdout=CurrentStdout(), ports=ports)
    env.ports = dataclasses.replace(ports, state_dir=blocker / "confluo")
    result = CliRunner().invoke(cli, ["status", "-i", str(site.inventory)], obj=env)
    assert result.exit_code == ExitCode.USAGE and "the state folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_closed_stdin_or_stdout_is_no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    monkeypatch.setattr(sys, "stdout", None)
    env = Env()
    assert not env.stdin_isatty and not env.stdout_isatty
    env.stdout.write("nowhere\n")  # the shell closed it: written to the null device, never a crash


class ReaderLeaves(io.StringIO):
    """A pipe whose reader went away after its first lines (`confluo upgrade | head -3`)."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.lines = lines

    def write(self, text: str) -> int:
        if self.getvalue().count("\n") >= self.lines:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_an_upgrade_whose_output_reader_leaves_goes_on_to_its_end(site: FakeSite) -> None:
    pipe = ReaderLeaves(lines=3)
    env = Env(stdin_isatty=False, stdout_isatty=False, stdout=ReaderSafe(pipe), ports=site.ports())
    result = CliRunner().invoke(cli, ["upgrade", "--yes", "--json", "-i", str(site.inventory)], obj=env)
    assert result.exit_code == ExitCode.SUCCESS, result.stderr
    assert set(site.versions().values()) == {TARGET} and pipe.getvalue().count("\n") == 3
    assert not site.api.upgrade_mode


@pytest.mark.parametrize(
    ("args", "code"),
    [(["inventory", "schema"], ExitCode.SUCCESS), (["plan", "-i", "/nonexistent.yaml"], ExitCode.USAGE)],
)
def test_a_command_whose_output_is_closed_by_its_reader_ends_as_it_would_have(args: list[str], code: int) -> None:
    command = [sys.executable, "-c", "from confluo.cli.main import main; main()", *args]
    started = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # `2>&1 | head`
    assert started.stdout is not None
    started.stdout.close()  # as `head` does once it has its lines
    assert started.wait(timeout=60) == code
