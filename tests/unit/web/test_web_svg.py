"""The server-drawn charts: layered layout of a DAG, and escaping of what users named."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from orchestrator.web.svg import GanttRow, Span, durations_svg, gantt_svg, graph_svg, layers, layout


def test_a_task_sits_one_layer_after_its_deepest_upstream() -> None:
    tasks = {"a": (), "b": ("a",), "c": ("b",), "d": ("a", "c"), "x": ()}
    assert layers(tasks) == {"a": 0, "b": 1, "c": 2, "d": 3, "x": 0}
    nodes = {n.task_id: n for n in layout(tasks)}
    assert nodes["a"].x < nodes["b"].x < nodes["c"].x < nodes["d"].x
    assert nodes["a"].x == nodes["x"].x and nodes["a"].y != nodes["x"].y


def test_labels_are_escaped() -> None:
    svg = graph_svg({"<b>": ()}, {}, lambda task_id: f"/t/{task_id}")
    assert "<b>" not in svg.replace("<svg", "") and "&lt;b&gt;" in svg
    start = datetime(2026, 1, 1, tzinfo=UTC)
    span = Span("running", start, start + timedelta(seconds=5), "success", "<try>")
    assert "&lt;try&gt;" in gantt_svg([GanttRow("<t>", [span])])
    assert "&lt;t&gt;" in durations_svg(["r1", "r2"], {"<t>": [1.0, None]})


def test_gantt_spans_share_one_time_axis() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    first = Span("running", start, start + timedelta(seconds=10), "success", "")
    second = Span(
        "running", start + timedelta(seconds=10), start + timedelta(seconds=20), "failed", ""
    )
    svg = gantt_svg([GanttRow("a", [first]), GanttRow("b", [second])], width=200)
    xs = [float(x) for x in re.findall(r'class="bar running" x="([\d.]+)"', svg)]
    assert xs[1] - xs[0] == 100.0  # half of the 200px axis
