import time

import pytest

from confluo import configfiles
from confluo.secrets import mask_secrets

STOCK = """# Where Confluence keeps its data.
#
# - For example:
# confluence.home=/var/confluence

# confluence.home=c:/confluence/data
"""


def test_with_home_appends_the_setting_and_keeps_every_comment() -> None:
    result = configfiles.with_home(STOCK, "/var/atlassian/application-data/confluence")
    assert result.startswith(STOCK.rstrip("\n"))
    assert result.splitlines()[-1] == "confluence.home=/var/atlassian/application-data/confluence"
    assert configfiles.read_home(result) == "/var/atlassian/application-data/confluence"


def test_with_home_replaces_an_existing_setting_instead_of_adding_a_second_one() -> None:
    text = STOCK + "confluence.home = /old/home\n"
    result = configfiles.with_home(text, "/new/home")
    uncommented = [line for line in result.splitlines() if line and not line.startswith("#")]
    assert uncommented == ["confluence.home=/new/home"]


@pytest.mark.parametrize(
    ("text", "home"),
    [
        ("confluence.home=/a\n", "/a"),
        ("confluence.home = /a \n", "/a "),  # Java keeps trailing blanks: part of the value
        ("confluence.home: /a\n", "/a"),
        ("confluence.home /a\n", "/a"),
        ("confluence.home=/a\\\n    /b\n", "/a/b"),  # a continuation line
        ("confluence.home=c:\\\\data\n", "c:\\data"),  # an escaped backslash
        ("! confluence.home=/a\n", None),
        ("confluence.home=/a\nconfluence.home=/b\n", "/b"),
        ("# confluence.home=/a\n", None),
        ("", None),
    ],
)
def test_read_home_takes_the_last_uncommented_line(text: str, home: str | None) -> None:
    assert configfiles.read_home(text) == home


@pytest.mark.parametrize(
    "line",
    [
        '<Connector port="8443" keystorePass="hunter2" />',
        "application.password=hunter2",
        "jdbc.password: hunter2",
    ],
)
def test_mask_secrets_hides_password_values(line: str) -> None:
    masked = mask_secrets(line)
    assert "hunter2" not in masked
    assert "******" in masked


def test_unified_diff_is_empty_for_identical_files_and_masks_secrets() -> None:
    assert configfiles.unified_diff("a", "x\n", "x\n") == ""
    diff = configfiles.unified_diff("conf/server.xml", "<a/>\n", '<a keystorePass="s3cret"/>\n')
    assert "+<a keystorePass=" in diff
    assert "s3cret" not in diff


def test_masking_stays_fast_on_a_huge_word() -> None:
    # A 100 000-character key once took minutes: the key pattern was tried at every start, every split.
    started = time.monotonic()
    for text in ("a" * 100_000, "password" * 12_500, "x.password" * 10_000 + "=v"):
        mask_secrets(text)
    assert time.monotonic() - started < 2
