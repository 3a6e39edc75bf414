"""The lab's sudoers grants exactly what confluo runs as root, which is exactly what the README tells an
administrator to grant: a new privileged command in the core then fails in the lab as on a real node."""

from __future__ import annotations

from pathlib import Path

from confluo.lab import hosts
from confluo.transport.remote import AS_RUN_USER, PRIVILEGED

README = Path(__file__).parent.parent / "README.md"


def _readme_commands(runas: str) -> list[str]:
    snippet = next(line for line in README.read_text().splitlines() if line.startswith(f"deploy ALL=({runas})"))
    return sorted(part.strip() for part in snippet.split("NOPASSWD:")[1].split(","))


def _readme_root_commands() -> list[str]:
    return _readme_commands("root")


def _lab_sudoers_commands() -> list[str]:
    text = hosts.sudoers_text(7, ["cl7n1"], hosts.sudo_command_paths())
    return sorted(text.split("CONFLUO_LAB_7_COMMANDS = ")[1].splitlines()[0].split(", "))


def test_the_lab_grants_exactly_what_confluo_runs_as_root() -> None:
    assert _lab_sudoers_commands() == sorted(PRIVILEGED)


def test_the_lab_grants_exactly_the_readme_sudoers_snippet() -> None:
    assert _lab_sudoers_commands() == _readme_root_commands()


def test_the_readme_grants_the_run_user_its_scripts_and_exactly_what_confluo_runs_as_that_user() -> None:
    scripts = [f"/opt/atlassian/confluence/current/bin/{action}-confluence.sh" for action in ("start", "stop")]
    assert _readme_commands("confluence") == sorted([*scripts, *AS_RUN_USER])


def test_the_readme_grants_synchrony_s_user_its_scripts_and_root_what_a_jar_swap_needs() -> None:
    from confluo.probe.synchrony import PRIVILEGED as SYNCHRONY_ROOT
    from confluo.steps.synchrony import START_SCRIPT, STOP_SCRIPT

    scripts = [f"/opt/atlassian/synchrony/{script}" for script in (START_SCRIPT, STOP_SCRIPT)]
    assert _readme_commands("synchrony") == sorted(scripts)
    assert set(SYNCHRONY_ROOT) <= set(_readme_root_commands())
