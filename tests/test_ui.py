import io
import json

from rich.console import Console

from confluo.events import Event, EventBus
from confluo.secrets import Masker, Secret
from confluo.ui.lines import JsonLines, PlainLines
from confluo.ui.live import LiveView


def test_plain_lines_show_a_wait_only_when_what_is_observed_changes() -> None:
    out = io.StringIO()
    sink = PlainLines(out)
    for message in ("/status STARTING", "/status STARTING", "/status RUNNING"):
        sink(Event("waiting", message, node="node1"))
    sink(Event("phase_done", "node1: start (2.0 s)", node="node1"))
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "node1: waiting (/status STARTING)",
        "node1: waiting (/status RUNNING)",
        "node1: start (2.0 s)",
    ]


def test_events_reach_every_sink_with_secrets_masked() -> None:
    out = io.StringIO()
    bus = EventBus(Masker([Secret("hunter2")]))
    bus.subscribe(JsonLines(out))
    bus.emit("note", "token hunter2 used", node="node1", detail="again hunter2")
    record = json.loads(out.getvalue())
    assert record["v"] == 1 and record["event"] == "note" and record["node"] == "node1"
    assert "hunter2" not in out.getvalue()


def test_live_view_shows_each_nodes_phase_deadline_and_observation() -> None:
    console = Console(file=io.StringIO(), width=120, record=True)
    with LiveView(console, ["node1", "node2"]) as view:
        view(Event("phase_started", "node1: start", node="node1", phase="start", data={"deadline": 900}))
        view(Event("waiting", "/status STARTING, cluster STARTING", node="node1", phase="start"))
        view(Event("node_done", "node2: ACTIVE on 9.2.14", node="node2"))
    text = console.export_text()
    node1 = next(line for line in text.splitlines() if "node1" in line)
    assert "start" in node1 and "900s" in node1 and "/status STARTING" in node1
    assert "done" in next(line for line in text.splitlines() if "node2" in line)
