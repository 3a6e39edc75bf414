"""The carry as the plan decides it, on typed facts: where the base comes from, files confluo cannot merge, and
what the plan then says and runs. Pure: build_plan on facts, no host."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import pytest
from test_plan_rules import facts, inventory, with_node

from confluo.errors import RefusedError
from confluo.plan.upgrade import build_plan
from confluo.probe.facts import Facts
from confluo.probe.node import parse_probe
from confluo.steps.base import FileChange, Preview

SETENV = "setenv.sh"
REL = f"bin/{SETENV}"
BASE = 'CATALINA_OPTS="-Xmx1g ${CATALINA_OPTS}"\n# vendor\nCATALINA_OPTS="-Dx=1 ${CATALINA_OPTS}"\n'
MINE = BASE.replace("-Xmx1g", "-Xmx4g")
THEIRS = BASE.replace("-Dx=1", "-Dx=1 -XX:+ExitOnOutOfMemoryError")
KEYSTORE = "conf/keystore.p12"


def released(found: Facts, stock: dict[str, str]) -> Facts:
    assert found.archive is not None
    return dataclasses.replace(found, archive=dataclasses.replace(found.archive, stock_files=stock))


def on_both_nodes(found: Facts, **changes: object) -> Facts:
    return with_node(with_node(found, 0, **changes), 1, **changes)


def carry_preview(found: Facts, tmp_path: Path, **inventory_changes: object) -> Preview:
    plan = build_plan(inventory(tmp_path, **inventory_changes), found)
    (step,) = [s for s in plan.steps() if s.name == "carry customizations" and s.node == "node1"]
    return step.preview


def carried(preview: Preview, rel: str) -> FileChange:
    (change,) = [c for c in preview.files if c.path.endswith("/" + rel)]
    return change


def test_the_pristine_stock_copy_is_the_base_and_both_sides_changes_are_written(tmp_path: Path) -> None:
    found = on_both_nodes(released(facts(), {REL: THEIRS}), present=(REL,), files={REL: MINE}, has_stock=True,
                          stock={REL: BASE})  # fmt: skip
    change = carried(carry_preview(found, tmp_path), REL)
    assert change.summary.startswith(f"{REL}: merged: your changes and the release's")
    assert '+CATALINA_OPTS="-Xmx4g' in change.diff and "-XX:+ExitOnOutOfMemoryError" in change.diff
    assert [title for title, _ in change.parts] == ["your changes", "the release's changes"]


def test_without_a_base_a_changed_file_is_refused_unless_two_way_is_accepted(tmp_path: Path) -> None:
    found = on_both_nodes(released(facts(), {REL: THEIRS}), present=(REL,), files={REL: MINE})
    with pytest.raises(RefusedError) as refusal:
        build_plan(inventory(tmp_path), found)
    assert f"node1: {REL}: differs from the 9.2.14 stock file and there is no stock copy of 9.2.13" in str(
        refusal.value
    )
    preview = carry_preview(found, tmp_path, customizations={"accept_two_way": True})
    assert "the release's changes to it are lost" in carried(preview, REL).summary


def test_a_keystore_the_release_does_not_ship_is_copied_whole_even_unread(tmp_path: Path) -> None:
    # Mode 600 for the Confluence user: the login user cannot read it, and there is nothing to merge it with.
    found = on_both_nodes(facts(), present=(KEYSTORE,), files={})
    preview = carry_preview(found, tmp_path, customizations={"extra_files": [KEYSTORE]})
    change = carried(preview, KEYSTORE)
    assert "copied whole as root, its contents not read" in change.summary and change.diff == ""
    assert any(f"/usr/bin/cp -p -- /opt/atlassian/confluence/9.2.13/{KEYSTORE}" in c for c in preview.commands)


def test_a_file_that_is_not_utf8_is_never_merged_as_text(tmp_path: Path) -> None:
    latin1 = base64.b64encode(MINE.replace("# vendor", "# réglages").encode("latin-1")).decode()
    probed = parse_probe("node1", f"@@present\n{REL}\n@@file {REL}\n{latin1}\n@@end\n")
    assert (probed.files, probed.not_text) == ({}, (REL,))
    found = on_both_nodes(released(facts(), {REL: THEIRS}), present=(REL,), files={}, not_text=(REL,),
                          has_stock=True, stock={REL: BASE})  # fmt: skip
    with pytest.raises(RefusedError) as refusal:
        build_plan(inventory(tmp_path), found)
    assert f"node1: {REL}: it is not UTF-8 text, so it cannot be merged" in str(refusal.value)


def test_an_empty_customization_file_is_read_as_empty_not_as_unreadable() -> None:
    probed = parse_probe("node1", f"@@present\nbin/user.sh\n@@file bin/user.sh\n\n@@file {REL}\n\n@@end\n")
    assert probed.files == {"bin/user.sh": ""}, "setenv.sh is not present: its empty section is no file"
