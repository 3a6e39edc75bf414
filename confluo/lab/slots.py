"""Slots: each running lab holds one (its third address octet), claimed atomically with mkdir.

A slot is free again when its lab dir has no lab.json naming it and whoever claimed it is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path

from confluo.lab import hosts
from confluo.lab.hosts import LabError
from confluo.lab.model import Lab, lab_json

SLOTS_DIR = hosts.LAB_STATE_DIR
MAX_SLOTS = 200  # third octets 200+ are left to other test suites (tests/lab_node)


def _owner_file(slot: int) -> Path:
    return SLOTS_DIR / str(slot) / "owner.json"


def _is_stale(slot: int) -> bool:
    try:
        owner = json.loads(_owner_file(slot).read_text())
    except (OSError, ValueError):
        # Being claimed right now (mkdir done, owner not yet written), or long abandoned.
        return time.time() - (SLOTS_DIR / str(slot)).stat().st_mtime > 30
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(lab_json(Path(owner["dir"])).read_text())["slot"] == slot:
            return False
    return not hosts.pid_alive(int(owner.get("pid", 0)))


def claim_slot(lab_dir: Path) -> int:
    """The lowest free slot, claimed atomically with mkdir (parallel `up`s never share one)."""
    if SLOTS_DIR == hosts.LAB_STATE_DIR:
        hosts.ensure_state_dir()
    SLOTS_DIR.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOTS):
        slot_dir = SLOTS_DIR / str(slot)
        if slot_dir.exists() and not (_is_stale(slot) and _retire(slot_dir)):
            continue
        try:
            slot_dir.mkdir()
        except FileExistsError:
            continue
        owner = {"dir": str(lab_dir), "pid": os.getpid(), "claimed": time.time()}
        _owner_file(slot).write_text(json.dumps(owner))
        return slot
    raise LabError(f"all {MAX_SLOTS} lab slots are taken ({SLOTS_DIR}); `confluo lab down` labs you no longer need")


def _retire(slot_dir: Path) -> bool:
    """Move a stale slot out of the way; only one of several racing claimers wins the rename."""
    tombstone = slot_dir.with_name(f".stale-{slot_dir.name}-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        slot_dir.rename(tombstone)
    except OSError:
        return False
    shutil.rmtree(tombstone, ignore_errors=True)
    return True


def release_slot(lab: Lab) -> None:
    slot_dir = SLOTS_DIR / str(lab.slot)
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(_owner_file(lab.slot).read_text())["dir"] == str(lab.dir):
            shutil.rmtree(slot_dir, ignore_errors=True)
