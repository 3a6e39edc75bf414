"""A plain installation directory started by an init.d script: confluo repoints the script itself.
Run against a lab in local mode (no SSH, no sudo), since the lab's sudoers does not cover an init.d script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from labkit import NEXT, start_lab
from labruns import confluo

from confluo import configfiles

pytestmark = pytest.mark.lab

# Shaped like the script Atlassian's installer writes: it changes into the installation's bin directory.
INIT_SCRIPT = """#!/bin/bash
# Confluence Linux service controller script
cd "{install}/bin"

case "$1" in
    start)
        ./start-confluence.sh
        ;;
    stop)
        ./stop-confluence.sh
        ;;
    *)
        echo "Usage: $0 {{start|stop}}"
        exit 1
        ;;
esac
"""


def test_plain_installation_with_an_init_script_is_upgraded_by_rewriting_the_script(tmp_path: Path) -> None:
    with start_lab(local=True) as lab:
        document: dict[str, Any] = yaml.safe_load(lab.inventory.read_text())
        scripts = {}
        for node in document["nodes"]:
            install = Path(node["install"]["base"]) / "9.2.13"
            script = Path(node["install"]["base"]).parents[2] / "etc" / "init.d" / "confluence"
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text(INIT_SCRIPT.format(install=install))
            script.chmod(0o755)
            scripts[node["name"]] = (script, install)
            node["install"] = {"layout": "plain", "path": str(install)}
            node["service"] = {"kind": "initd", "file": str(script)}
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(document))

        plan = confluo("plan", "-i", str(inventory), "--to", NEXT)
        assert plan.returncode == 0, plan.stderr
        assert '+cd "' in plan.stdout and "atlassian-confluence-9.2.14/bin" in plan.stdout

        result = confluo("upgrade", "-i", str(inventory), "--to", NEXT, "--yes")
        assert result.returncode == 0, result.stdout + result.stderr

        status = lab.status()
        assert status["cluster"]["state"] == "STABLE"
        assert [(n["state"], n["version"]) for n in status["nodes"]] == [("ACTIVE", NEXT)] * 3
        for script, old_install in scripts.values():
            new_install = old_install.parent / f"atlassian-confluence-{NEXT}"
            text = script.read_text()
            assert configfiles.names_path(text, str(new_install))
            assert not configfiles.names_path(text, str(old_install))
            assert old_install.is_dir() and (new_install / "bin/start-confluence.sh").is_file()


@pytest.mark.parametrize(
    ("text", "old", "new", "expected"),
    [
        (
            "ExecStart=/opt/atlassian/confluence/bin/start-confluence.sh -fg\n",
            "/opt/atlassian/confluence",
            "/opt/atlassian/atlassian-confluence-9.2.14",
            "ExecStart=/opt/atlassian/atlassian-confluence-9.2.14/bin/start-confluence.sh -fg\n",
        ),
        (  # a longer path that merely starts with the old one is left alone
            "PIDFile=/opt/atlassian/confluence-data/x.pid\nExecStop=/opt/atlassian/confluence/bin/stop-confluence.sh\n",
            "/opt/atlassian/confluence",
            "/opt/c2",
            "PIDFile=/opt/atlassian/confluence-data/x.pid\nExecStop=/opt/c2/bin/stop-confluence.sh\n",
        ),
        ('cd "/opt/c/bin"\n', "/opt/c", "/opt/d", 'cd "/opt/d/bin"\n'),
    ],
)
def test_repoint_replaces_the_installation_path_as_a_whole(text: str, old: str, new: str, expected: str) -> None:
    assert configfiles.repoint(text, old, new) == expected
