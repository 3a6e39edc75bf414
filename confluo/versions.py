"""Confluence versions and which upgrades may be done rolling, one node at a time (pure).

The rules follow Atlassian's "upgrade without downtime" table: rolling upgrades exist from 7.9; before 7.14
only bug-fix upgrades qualify; from 7.14 also the next feature version; a platform release (a new major
version) always needs downtime.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_VERSION_PATTERN = re.compile(r"([0-9]+)\.([0-9]+)(?:\.([0-9]+))?")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse "9.2.14" or "9.2" (patch 0); anything else, such as "9", "9.2.x" or "v9.2", is refused."""
        match = _VERSION_PATTERN.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"not a Confluence version: {text!r} (expected MAJOR.MINOR.PATCH, e.g. 9.2.14)")
        major, minor, patch = match.groups()
        return cls(int(major), int(minor), int(patch or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def feature(self) -> str:
        """The feature release this version belongs to, e.g. "9.2"."""
        return f"{self.major}.{self.minor}"


FIRST_ROLLING = Version(7, 9, 0)
"""Rolling (zero-downtime) upgrades exist from this version on."""

FIRST_ROLLING_FEATURE = Version(7, 14, 0)
"""From this version on, a rolling upgrade may also go to the next feature version."""


class UpgradeKind(enum.Enum):
    SAME = "same"
    BUGFIX = "bug-fix"
    FEATURE = "feature"
    PLATFORM = "platform"
    DOWNGRADE = "downgrade"
    SKIPS_FEATURES = "skips feature versions"


def classify(source: Version, target: Version) -> UpgradeKind:
    if target == source:
        return UpgradeKind.SAME
    if target < source:
        return UpgradeKind.DOWNGRADE
    if target.major != source.major:
        return UpgradeKind.PLATFORM
    if target.minor == source.minor:
        return UpgradeKind.BUGFIX
    if target.minor == source.minor + 1:
        return UpgradeKind.FEATURE
    return UpgradeKind.SKIPS_FEATURES


_DOWNTIME = "use an upgrade with downtime instead"


def rolling_upgrade_refusal(source: Version, target: Version) -> str | None:
    """None when `source` -> `target` may be done as a rolling upgrade; otherwise why not, in one sentence."""
    kind = classify(source, target)
    step = f"{source} -> {target}"
    if kind is UpgradeKind.SAME:
        return f"already at {target}: nothing to upgrade"
    if kind is UpgradeKind.DOWNGRADE:
        return f"{step} is a downgrade; Confluence can only be upgraded to a higher version"
    if kind is UpgradeKind.PLATFORM:
        return f"{step} is a platform upgrade (to {target.major}.x), which always needs downtime; {_DOWNTIME}"
    if source < FIRST_ROLLING:
        return f"rolling upgrades exist from Confluence {FIRST_ROLLING.feature}; from {source}, {_DOWNTIME}"
    if kind is UpgradeKind.BUGFIX:
        return None
    if kind is UpgradeKind.FEATURE:
        if source < FIRST_ROLLING_FEATURE:
            return (
                f"{step} is a feature upgrade; before Confluence {FIRST_ROLLING_FEATURE.feature} a rolling "
                f"upgrade may only go to a bug-fix release of {source.feature}; {_DOWNTIME}"
            )
        return None
    return (
        f"{step} spans more than one feature version; a rolling upgrade may only go to the next one "
        f"({source.major}.{source.minor + 1}); {_DOWNTIME}, or upgrade one feature version at a time"
    )


def next_bugfix(version: Version) -> Version:
    return Version(version.major, version.minor, version.patch + 1)
