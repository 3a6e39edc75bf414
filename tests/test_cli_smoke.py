from pathlib import Path

from click.testing import CliRunner

from confluo.cli.main import cli


def test_version_flag_prints_the_package_version() -> None:
    from confluo import __version__

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


README = (__import__("pathlib").Path(__file__).parent.parent / "README.md").read_text()


def test_readme_sudoers_snippet_names_every_command_confluo_runs_as_root() -> None:
    from confluo.transport.remote import PRIVILEGED

    snippet = next(line for line in README.splitlines() if line.startswith("deploy ALL=(root)"))
    assert sorted(part.strip() for part in snippet.split("NOPASSWD:")[1].split(",")) == sorted(PRIVILEGED)


def test_readme_and_help_document_every_exit_code() -> None:
    from confluo.errors import ExitCode

    help_text = CliRunner().invoke(cli, ["--help"]).output
    for code in ExitCode:
        assert f"| {code.value} |" in README
        assert f"{code.value:>3}  {code.description}" in help_text


def test_completion_script_completes_subcommands_in_bash() -> None:
    import os
    import subprocess
    import sys

    script = CliRunner().invoke(cli, ["completion", "bash"]).output
    assert "_confluo_completion" in script and "complete -o nosort -F _confluo_completion confluo" in script
    # What the sourced script asks confluo for when the user types `confluo st<TAB>`.
    asked = subprocess.run(
        [sys.executable, "-m", "confluo"],
        env={**os.environ, "_CONFLUO_COMPLETE": "bash_complete", "COMP_WORDS": "confluo st", "COMP_CWORD": "1"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert asked.stdout.split() == ["plain,status"]


def test_inventory_check_locates_problems_and_schema_prints_the_committed_schema(tmp_path: Path) -> None:
    import json

    repo = Path(__file__).parent.parent
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: {name: c}\nnodes: []\nbogus: 1\n")
    result = CliRunner().invoke(cli, ["inventory", "check", "-i", str(bad)])
    assert result.exit_code == 2 and "bogus" in result.stderr
    schema = json.loads(CliRunner().invoke(cli, ["inventory", "schema"]).stdout)
    assert schema == json.loads((repo / "docs/inventory.schema.json").read_text())
