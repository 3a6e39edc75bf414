from click.testing import CliRunner

from confluo.cli import cli


def test_version_flag_prints_the_package_version() -> None:
    from confluo import __version__

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output
