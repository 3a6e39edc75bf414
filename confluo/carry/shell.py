"""The one check of a merged file that runs something: `bash -n` on this machine (bash parses a script the same
way everywhere; the text goes on stdin, nothing is executed and nothing is written)."""

from __future__ import annotations

import subprocess

SYNTAX_CHECK_SECONDS = 10.0


def bash_syntax_error(script: str) -> str | None:
    """bash's own message for a script it cannot parse; None when it parses."""
    try:
        checked = subprocess.run(
            ["bash", "-n"], input=script, capture_output=True, text=True, timeout=SYNTAX_CHECK_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot run bash -n: {error}"
    if checked.returncode == 0:
        return None
    return checked.stderr.strip().replace("bash: ", "", 1) or f"bash -n exited with status {checked.returncode}"
