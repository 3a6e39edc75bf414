import pytest

from confluo.versions import UpgradeKind, Version, classify, next_bugfix, rolling_upgrade_refusal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9.2.14", Version(9, 2, 14)),
        ("7.9", Version(7, 9, 0)),
        (" 10.0.1 ", Version(10, 0, 1)),
        ("8.10.0", Version(8, 10, 0)),
    ],
)
def test_parse_accepts_two_or_three_numeric_parts(text: str, expected: Version) -> None:
    assert Version.parse(text) == expected


@pytest.mark.parametrize("text", ["9", "9.2.14.1", "9.2.x", "v9.2.14", "9.2-rc1", "", "9..2", "-1.2.3", "９.2.1"])
def test_parse_refuses_anything_else_and_says_what_it_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a Confluence version: .*expected MAJOR\.MINOR\.PATCH"):
        Version.parse(text)


def test_str_always_shows_three_parts() -> None:
    assert str(Version.parse("9.2")) == "9.2.0"
    assert f"{Version(7, 14, 2)}" == "7.14.2"


def test_versions_order_numerically_not_as_text() -> None:
    assert Version.parse("8.10.0") > Version.parse("8.9.9")
    assert sorted([Version(9, 0, 0), Version(7, 19, 3), Version(8, 5, 10)]) == [
        Version(7, 19, 3),
        Version(8, 5, 10),
        Version(9, 0, 0),
    ]


@pytest.mark.parametrize(
    ("source", "target", "kind"),
    [
        ("9.2.14", "9.2.14", UpgradeKind.SAME),
        ("9.2.13", "9.2.14", UpgradeKind.BUGFIX),
        ("7.14.2", "7.15.0", UpgradeKind.FEATURE),
        ("7.14.0", "7.17.0", UpgradeKind.SKIPS_FEATURES),
        ("8.9.0", "9.0.0", UpgradeKind.PLATFORM),
        ("7.19.2", "9.2.0", UpgradeKind.PLATFORM),
        ("9.2.14", "9.2.13", UpgradeKind.DOWNGRADE),
        ("9.0.0", "8.9.0", UpgradeKind.DOWNGRADE),
    ],
)
def test_classify(source: str, target: str, kind: UpgradeKind) -> None:
    assert classify(Version.parse(source), Version.parse(target)) is kind


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("7.9.0", "7.9.4"),  # bug-fix, from the first version with rolling upgrades
        ("7.12.0", "7.12.2"),  # bug-fix before 7.14
        ("7.14.0", "7.14.2"),
        ("7.14.2", "7.15.0"),  # next feature version, from 7.14 on
        ("8.5.4", "8.6.0"),
        ("9.2.13", "9.2.14"),
    ],
)
def test_rolling_upgrade_allowed(source: str, target: str) -> None:
    assert rolling_upgrade_refusal(Version.parse(source), Version.parse(target)) is None


@pytest.mark.parametrize(
    ("source", "target", "reason"),
    [
        ("7.13.5", "7.14.0", "7.13.5 -> 7.14.0 is a feature upgrade; before Confluence 7.14"),
        ("7.12.0", "7.13.0", "before Confluence 7.14 a rolling upgrade may only go to a bug-fix release of 7.12"),
        ("7.14.0", "7.17.0", "spans more than one feature version; a rolling upgrade may only go to the next one"),
        ("7.14.0", "7.16.0", "may only go to the next one (7.15)"),
        ("8.9.0", "9.0.0", "8.9.0 -> 9.0.0 is a platform upgrade (to 9.x), which always needs downtime"),
        ("7.19.0", "8.0.0", "platform upgrade"),
        ("9.2.14", "9.2.13", "9.2.14 -> 9.2.13 is a downgrade"),
        ("7.8.0", "7.8.3", "rolling upgrades exist from Confluence 7.9; from 7.8.0"),
        ("7.8.3", "7.9.0", "rolling upgrades exist from Confluence 7.9; from 7.8.3"),
        ("9.2.14", "9.2.14", "already at 9.2.14: nothing to upgrade"),
    ],
)
def test_rolling_upgrade_refused_with_a_reason(source: str, target: str, reason: str) -> None:
    refusal = rolling_upgrade_refusal(Version.parse(source), Version.parse(target))
    assert refusal is not None
    assert reason in refusal


@pytest.mark.parametrize(
    ("source", "target"),
    [("7.14.0", "7.17.0"), ("8.9.0", "9.0.0"), ("7.8.0", "7.8.3"), ("7.13.5", "7.14.0")],
)
def test_refusals_that_need_downtime_suggest_a_downtime_upgrade(source: str, target: str) -> None:
    refusal = rolling_upgrade_refusal(Version.parse(source), Version.parse(target))
    assert refusal is not None
    assert "use an upgrade with downtime instead" in refusal


@pytest.mark.parametrize(
    ("version", "expected"),
    [(Version(9, 2, 14), Version(9, 2, 15)), (Version(7, 9, 0), Version(7, 9, 1))],
)
def test_next_bugfix(version: Version, expected: Version) -> None:
    assert next_bugfix(version) == expected
