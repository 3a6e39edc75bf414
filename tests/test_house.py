"""Rules of the house that import-linter cannot see."""

from __future__ import annotations

import re
from pathlib import Path

import confluo

CORE = Path(confluo.__file__).parent
# Where reading the clock is not a wait: durations of commands and I/O deadlines inside the transports, and the
# live view's elapsed column. Every wait and retry goes through confluo/waits.py and its injectable clock.
# A secret command's timeout (secrets.py) is such an I/O deadline too.
CLOCK_READERS = {"waits.py", "transport/base.py", "transport/ssh.py", "transport/local.py", "ui/live.py", "secrets.py"}


def core_modules() -> list[Path]:
    return [path for path in CORE.rglob("*.py") if "lab" not in path.relative_to(CORE).parts]


def test_only_the_waits_module_sleeps() -> None:
    sleepers = [str(p.relative_to(CORE)) for p in core_modules() if re.search(r"\btime\.sleep\(", p.read_text())]
    assert sleepers == ["waits.py"]


def test_no_wait_reads_the_clock_itself() -> None:
    readers = {str(p.relative_to(CORE)) for p in core_modules() if "time.monotonic" in p.read_text()}
    assert readers <= CLOCK_READERS, readers - CLOCK_READERS


def test_no_core_module_is_a_god_module() -> None:
    """About 300 lines at most. The inventory's schema (declarations, each with the text an editor shows) and
    its builder are the exception."""
    sizes = {str(p.relative_to(CORE)): len(p.read_text().splitlines()) for p in core_modules()}
    exempt = {"inventory/schema.py", "inventory/build.py"}
    assert {name: lines for name, lines in sizes.items() if lines > 320 and name not in exempt} == {}
