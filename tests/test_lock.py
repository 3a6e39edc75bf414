import subprocess
import sys
from pathlib import Path

import pytest

from confluo.errors import ExitCode, RefusedError
from confluo.execute.lock import cluster_lock

HOLD = """
import sys, time
from pathlib import Path
from confluo.execute.lock import cluster_lock
with cluster_lock(sys.argv[1], Path(sys.argv[2])):
    print("held", flush=True)
    time.sleep(30)
"""


def test_a_second_run_against_the_same_cluster_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, "https://confluence.example.com", str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(RefusedError, match=f"pid {holder.pid}") as refused,
            cluster_lock("https://confluence.example.com", tmp_path),
        ):
            pass
        assert refused.value.exit_code is ExitCode.REFUSED
        with cluster_lock("https://other.example.com", tmp_path):
            pass  # another cluster is not blocked
    finally:
        holder.kill()
        holder.wait()
    with cluster_lock("https://confluence.example.com", tmp_path):
        pass  # released when its holder died
