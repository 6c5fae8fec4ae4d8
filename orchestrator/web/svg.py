"""SVG drawn on the server: the graph of a DAG, the Gantt chart of a run, and task durations.

Each function takes plain data and returns markup (every text escaped); the pages put it
inline, so the charts need no script and no download.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

#: Fill colours of task and run states (Airflow's palette, so users recognise them).
STATE_COLOURS: dict[str, str] = {
    "none": "#ffffff",
    "scheduled": "#d2b48c",
    "queued": "#9e9e9e",
    "running": "#32cd32",
    "success": "#2e8b3a",
    "failed": "#d32f2f",
    "up_for_retry": "#ffd700",
    "up_for_reschedule": "#40e0d0",
    "upstream_failed": "#ff9800",
    "skipped": "#ff69b4",
    "removed": "#d3d3d3",
}
#: Fill colours of the Gantt chart's thin bars: the time before an attempt's container runs.
WAIT_COLOURS: dict[str, str] = {"queued": "#bdbdbd", "pulling": "#64b5f6", "starting": "#7e57c2"}
LINE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
CHAR_WIDTH = 7.2  # px per character of the 12px monospace labels


def colour(state: str | None) -> str:
    return STATE_COLOURS.get(state or "none", "#ffffff")


# ------------------------------------------------------------------------------------- graph
@dataclass(frozen=True)
class Node:
    task_id: str
    layer: int
    x: float
    y: float
    width: float
    height: float


def layers(tasks: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each task's layer: the length of the longest path to it from a root (0 for roots).
    `tasks` maps task id → upstream task ids (unknown upstreams are ignored)."""
    found: dict[str, int] = {}
    remaining = dict(tasks)
    while remaining:
        progressed = False
        for task_id, upstream in list(remaining.items()):
            known = [u for u in upstream if u in tasks]
            if all(u in found for u in known):
                found[task_id] = max((found[u] + 1 for u in known), default=0)
                del remaining[task_id]
                progressed = True
        if not progressed:  # a cycle (a stored spec never has one): put the rest last
            last = max(found.values(), default=-1) + 1
            found.update(dict.fromkeys(remaining, last))
            break
    return found


def layout(
    tasks: Mapping[str, Sequence[str]], *, gap_x: float = 60, gap_y: float = 18
) -> list[Node]:
    """Left-to-right layers; within a layer, tasks ordered by the mean position of their
    upstream tasks (one barycentre pass keeps most edges from crossing)."""
    layer_of = layers(tasks)
    by_layer: dict[int, list[str]] = {}
    for task_id in tasks:
        by_layer.setdefault(layer_of[task_id], []).append(task_id)
    height = 30.0
    width = max((len(t) for t in tasks), default=4) * CHAR_WIDTH + 24
    rank: dict[str, float] = {}
    nodes: list[Node] = []
    for layer in sorted(by_layer):
        first_seen = {task_id: float(i) for i, task_id in enumerate(by_layer[layer])}

        def centre(task_id: str, first_seen: dict[str, float] = first_seen) -> float:
            ups = [rank[u] for u in tasks[task_id] if u in rank]
            return sum(ups) / len(ups) if ups else first_seen[task_id]

        members = sorted(by_layer[layer], key=centre)
        for i, task_id in enumerate(members):
            rank[task_id] = float(i)
            nodes.append(
                Node(
                    task_id=task_id,
                    layer=layer,
                    x=10 + layer * (width + gap_x),
                    y=10 + i * (height + gap_y),
                    width=width,
                    height=height,
                )
            )
    return nodes


def graph_svg(
    tasks: Mapping[str, Sequence[str]],
    states: Mapping[str, str],
    link: Callable[[str], str | None] = lambda _task_id: None,
) -> str:
    """The DAG as nodes (rounded rectangles named by task id, filled by state) and edges
    (curves from each upstream task to its downstream task)."""
    nodes = layout(tasks)
    at = {n.task_id: n for n in nodes}
    total_w = max((n.x + n.width for n in nodes), default=0) + 10
    total_h = max((n.y + n.height for n in nodes), default=0) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{total_w:.0f}"'
        f' height="{total_h:.0f}" viewBox="0 0 {total_w:.0f} {total_h:.0f}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#666"/>'
        "</marker></defs>",
    ]
    for task_id, upstream in tasks.items():
        for up in upstream:
            if up not in at:
                continue
            a, b = at[up], at[task_id]
            x1, y1 = a.x + a.width, a.y + a.height / 2
            x2, y2 = b.x, b.y + b.height / 2
            mid = (x1 + x2) / 2
            parts.append(
                f'<path class="edge" data-from="{escape(up)}" data-to="{escape(task_id)}"'
                f' d="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"'
                ' fill="none" stroke="#666" stroke-width="1.4" marker-end="url(#arrow)"/>'
            )
    for n in nodes:
        state = states.get(n.task_id, "none")
        text_fill = "#fff" if state in ("success", "failed") else "#1d2430"
        node = (
            f'<g class="node" data-task="{escape(n.task_id)}" data-state="{escape(state)}">'
            f"<title>{escape(n.task_id)}: {escape(state)}</title>"
            f'<rect x="{n.x:.1f}" y="{n.y:.1f}" rx="6" ry="6" width="{n.width:.1f}"'
            f' height="{n.height:.1f}" fill="{colour(state)}" stroke="#555"/>'
            f'<text x="{n.x + n.width / 2:.1f}" y="{n.y + n.height / 2 + 4:.1f}"'
            f' text-anchor="middle" font-family="monospace" font-size="12"'
            f' fill="{text_fill}">{escape(n.task_id)}</text></g>'
        )
        href = link(n.task_id)
        parts.append(f'<a href="{escape(href)}">{node}</a>' if href else node)
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------------------------- gantt
@dataclass(frozen=True)
class Span:
    kind: str  # "queued", "pulling", "starting" (thin bars) or "running"
    start: datetime
    end: datetime
    state: str  # the attempt's state (colours the running span)
    label: str  # shown on hover


@dataclass(frozen=True)
class GanttRow:
    label: str
    spans: Sequence[Span]
    href: str | None = None


def _seconds(delta_from: datetime, moment: datetime) -> float:
    return (moment - delta_from).total_seconds()


def gantt_svg(rows: Sequence[GanttRow], *, width: float = 900) -> str:
    """A row per task instance; its queued (grey), pulling (blue) and starting (violet) spans
    as thin bars and its running spans in the attempt's state colour, on a shared time axis
    in seconds from the earliest span."""
    spans = [s for row in rows for s in row.spans]
    label_w = max((len(r.label) for r in rows), default=4) * CHAR_WIDTH + 16
    row_h, top = 24.0, 26.0
    height = top + row_h * len(rows) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" width="{label_w + width + 20:.0f}"'
        f' height="{height:.0f}">'
    ]
    if spans:
        origin = min(s.start for s in spans)
        extent = max(max(_seconds(origin, s.end) for s in spans), 1.0)
        scale = width / extent
        for i in range(6):
            value = extent * i / 5
            x = label_w + value * scale
            parts.append(
                f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 8:.0f}"'
                ' stroke="#e3e5e8"/>'
                f'<text x="{x:.1f}" y="{top - 10}" font-size="11" text-anchor="middle"'
                f' fill="#555">{_duration(value)}</text>'
            )
    else:
        origin, scale = datetime.min, 0.0
    for i, row in enumerate(rows):
        y = top + i * row_h
        label = f'<text x="4" y="{y + 16:.1f}" font-family="monospace" font-size="12">'
        label += f"{escape(row.label)}</text>"
        parts.append(f'<a href="{escape(row.href)}">{label}</a>' if row.href else label)
        for span in row.spans:
            x = label_w + _seconds(origin, span.start) * scale
            w = max(_seconds(span.start, span.end) * scale, 2.0)
            thin = span.kind in WAIT_COLOURS
            fill = WAIT_COLOURS[span.kind] if thin else colour(span.state)
            parts.append(
                f'<rect class="bar {span.kind}" x="{x:.1f}" y="{y + (8 if thin else 3):.1f}"'
                f' width="{w:.1f}" height="{8 if thin else 18}" fill="{fill}" stroke="#555"'
                f' stroke-width="0.5"><title>{escape(span.label)}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


# --------------------------------------------------------------------------------- durations
def durations_svg(
    run_labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    width: float = 860,
    height: float = 300,
) -> str:
    """A line per task: its duration (seconds) in each run, runs oldest first left to
    right; a run where the task did not finish leaves a gap."""
    left, bottom, top = 56.0, 28.0, 12.0
    values = [v for line in series.values() for v in line if v is not None]
    peak = max(values, default=1.0) or 1.0
    plot_h = height - top - bottom
    step = width / max(len(run_labels) - 1, 1)
    legend_h = 18 * len(series)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="durations" width="{left + width + 20:.0f}"'
        f' height="{height + legend_h:.0f}">'
    ]
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - value / peak * plot_h
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}" stroke="#e3e5e8"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end"'
            f' fill="#555">{_duration(value)}</text>'
        )
    for index, (task_id, line) in enumerate(series.items()):
        stroke = LINE_COLOURS[index % len(LINE_COLOURS)]
        segments: list[list[str]] = [[]]
        for i, maybe in enumerate(line):
            if maybe is None:
                segments.append([])
                continue
            value = maybe
            x, y = left + i * step, top + plot_h - value / peak * plot_h
            segments[-1].append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{stroke}"><title>'
                f"{escape(task_id)} in {escape(run_labels[i])}: {_duration(value)}</title></circle>"
            )
        for points in segments:
            if len(points) > 1:
                parts.append(
                    f'<polyline class="series" data-task="{escape(task_id)}" fill="none"'
                    f' stroke="{stroke}" stroke-width="1.6" points="{" ".join(points)}"/>'
                )
        y = height + 14 * index + 4
        parts.append(
            f'<rect x="{left}" y="{y:.0f}" width="12" height="3" fill="{stroke}"/>'
            f'<text x="{left + 18}" y="{y + 5:.0f}" font-size="12"'
            f' font-family="monospace">{escape(task_id)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
