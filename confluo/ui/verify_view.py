"""`confluo verify` as a table: one row per node (read, search, how long its index took), then the clean-up."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _seconds(value: float | None) -> str:
    return f"{value:.2f} s" if value is not None else "-"


def verify_table(report: dict[str, Any]) -> Table:
    """`report`: VerifyReport.as_json()."""
    table = Table(title="cluster check " + ("passed" if report["passed"] else "FAILED"))
    for title in ("node", "read", "search", "found after", "problem"):
        table.add_column(title)
    for node in report["nodes"]:
        problems = [p for p in (node["read_problem"], node["search_problem"]) if p]
        table.add_row(
            node["name"],
            "ok" if node["read"] else "FAILED",
            "ok" if node["search"] else "FAILED",
            _seconds(node["search_seconds"]),
            "; ".join(problems) or "-",
        )
    return table


def verify_summary(report: dict[str, Any]) -> str:
    """The test page: where it was, how it was searched for, and that it is gone (or why not)."""
    page, cleanup = report["page"], report["cleanup"]
    done = cleanup["problem"] or "deleted, and purged from the trash"
    return (
        f"test page {page['id']} {page['title']!r} in space {report['space']}, created through {report['api_url']}, "
        f"searched for with {report['cql']}: {done}"
    )
