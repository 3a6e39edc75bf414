"""The README's first command, `bash examples/demo.sh`, run as a new user runs it: a lab up, the plan, a real
upgrade under traffic, the status — and 0 failed requests. Its steps are tested one by one elsewhere; this proves
the script that strings them together still works end to end."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from labkit import new_lab_dir

from confluo.lab.model import DEFAULT_VERSION

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_upgrades_its_lab_with_no_failed_request() -> None:
    lab = new_lab_dir("demo-") / "lab"
    env = {**os.environ, "LAB_DIR": str(lab)}
    try:
        demo = subprocess.run(
            ["bash", "examples/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
        )
    finally:
        down = [sys.executable, "-m", "confluo", "lab", "down", "--dir", str(lab)]
        subprocess.run(down, capture_output=True, check=False)  # already down, unless the demo broke off
        shutil.rmtree(lab.parent, ignore_errors=True)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    major, minor, fix = DEFAULT_VERSION.split(".")
    upgraded_to = f"{major}.{minor}.{int(fix) + 1}"
    assert "== confluo plan (changes nothing)" in demo.stdout and "internal error" not in demo.stderr
    assert f"runs {upgraded_to} on every node; the cluster is STABLE" in demo.stdout
    answered = re.search(r"during the upgrade: (\d+) answered, (\d+) failed", demo.stdout)
    assert answered is not None and int(answered[1]) > 0 and answered[2] == "0", demo.stdout[-2000:]
    assert re.search(rf"node3 +127\S+ +ACTIVE +RUNNING +{re.escape(upgraded_to)}", demo.stdout), demo.stdout[-2000:]
    assert demo.stdout.rstrip().splitlines()[-1].startswith(f"Lab in {lab}")  # and taken down
