"""Confluence versions: parsing, build numbers, and which versions a cluster accepts (rolling upgrades)."""

from __future__ import annotations

import re


def parse_version(text: str) -> tuple[int, int, int]:
    """'9.2.13' -> (9, 2, 13); a missing bug-fix part counts as 0."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not match:
        raise ValueError(f"not a Confluence version: {text!r}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def build_number_for(version: str) -> int:
    """A deterministic build number that grows with the version (minor < 100, bug-fix < 1000)."""
    major, minor, patch = parse_version(version)
    return major * 100_000 + minor * 1_000 + patch


def rolling_step_allowed(original: str, target: str) -> bool:
    """Whether a cluster on ``original`` may take ``target`` without downtime (Atlassian's table)."""
    try:
        old, new = parse_version(original), parse_version(target)
    except ValueError:
        return False
    if new <= old or new[0] != old[0]:  # no downgrade, never a platform release
        return False
    if new[1] == old[1]:
        return old[:2] >= (7, 9)  # bug-fix releases, since ZDU exists
    if new[1] == old[1] + 1:
        return old[:2] >= (7, 14)  # the next feature release, from 7.14 on
    return False


def version_refusal(
    candidate: str,
    *,
    cluster_version: str,
    upgrade_mode: bool,
    original_version: str | None,
    finalizing_version: str | None = None,
) -> str | None:
    """Why the cluster refuses a node running ``candidate``, or None when it is accepted."""
    if candidate in (cluster_version, finalizing_version):
        return None
    if not upgrade_mode:
        return (
            f"version {candidate} is not accepted by the cluster: upgrade mode is off and the cluster "
            f"runs {cluster_version}"
        )
    original = original_version or cluster_version
    if rolling_step_allowed(original, candidate):
        return None
    return (
        f"version {candidate} is not accepted by the cluster: {original} -> {candidate} is not an "
        "allowed rolling upgrade (a higher bug-fix release, or the next feature release from 7.14; never a "
        "platform release)"
    )
