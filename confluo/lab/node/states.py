"""The names of node and cluster states (the ZDU plugin's enums) and of the faults the lab can inject."""

from __future__ import annotations

STARTING = "STARTING"
ACTIVE = "ACTIVE"
DRAINING = "DRAINING"
TERMINATING = "TERMINATING"
OFFLINE = "OFFLINE"
ERROR = "ERROR"
RUNNING_FINALIZE = "RUNNING_FINALIZE_UPGRADE_TASKS"
TASKS_FAILED = "UPGRADE_TASKS_FAILED"
FIRST_RUN = "FIRST_RUN"  # a /status state only: such a node never joins the cluster

STABLE = "STABLE"
READY_TO_UPGRADE = "READY_TO_UPGRADE"
MIXED = "MIXED"
READY_TO_RUN_UPGRADE_TASKS = "READY_TO_RUN_UPGRADE_TASKS"
RUNNING_UPGRADE_TASKS = "RUNNING_UPGRADE_TASKS"
UPGRADE_TASKS_FAILED = "UPGRADE_TASKS_FAILED"

# Faults the lab can inject. The node program acts on the first eight; "crash" and "ssh-down" are carried
# out by the orchestration (it kills processes) and are accepted here only so they can be recorded.
FAULT_KINDS = (
    "fail-start",
    "hang-start",
    "hang-stop",
    "slow-stop",
    "api-500",
    "finalize-fail",
    "index-broken",
    "pages-broken",  # ACTIVE and RUNNING, but no page opens or renders (an app that broke in the upgrade)
    "crash",
    "ssh-down",
)
