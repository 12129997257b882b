"""What the Sweeps tab shows, as pure functions over the API's SWEEP objects: no widgets, no I/O.

The trials' table lists them best first, as `%dlnest sweeps ID` does, the best row shaded and
bold. The charts plot each trial's objective against its number and against one searched key;
a key whose values are not numbers is placed by its value's index among the values seen (and
the axis says so), and one whose values span two decades or more (a learning rate) is drawn as
log10 of its values, as a loguniform search is. Every key, value and note passes through
`html.escape` here.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.sweeps import (
    DEFAULT_PRUNE,
    TrialState,
    TrialView,
    best_first,
    param_text,
    params_text,
    trials_active,
    value_text,
)
from .view_model import STATE_COLOURS, short, state_badge

BEST_SHADE = "#d1e7dd"
LOG_SPAN_RATIO = 100.0  # positive values spanning this much are drawn as log10
NUMBER_AXIS = "trial number"


def searched_keys(sweep: Mapping[str, Any]) -> list[str]:
    """The config keys the sweep varies: its grid's, then its search's."""
    return [*(sweep.get("grid") or {}), *(sweep.get("search") or {})]


def trials_done(sweep: Mapping[str, Any]) -> int:
    return len(sweep["trials"]) - trials_active(sweep["trials"])


def sweep_options(sweeps: Sequence[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """The sweep picker's choices, newest first."""
    options = []
    for sweep in sorted(sweeps, key=lambda s: -int(s["id"])):
        about = sweep.get("description") or ", ".join(searched_keys(sweep))
        options.append((short(f"{sweep['id']} {sweep['state']} {about}", 60), int(sweep["id"])))
    return options


def sweep_summary_html(sweep: Mapping[str, Any]) -> str:
    """One paragraph: its state, what it varies, how far it is, how trials are judged, the
    best so far, and the server's note (why it failed or stopped)."""
    how = "search" if sweep.get("search") else "grid"
    keys = ", ".join(searched_keys(sweep))
    if sweep.get("metric"):
        prune = (
            f", {sweep['prune']} pruning" if sweep.get("prune") not in (None, DEFAULT_PRUNE) else ""
        )
        judged = (
            f"judged by {sweep['metric']} ({sweep['direction']}, {sweep['objective']} epoch{prune})"
        )
    else:
        judged = "not judged (no metric)"
    parts = [
        f"{state_badge(str(sweep['state']))} a {how} over {html.escape(keys)}",
        f"{trials_done(sweep)} of {sweep['trials_total']} trials done",
        html.escape(judged),
    ]
    best = sweep.get("best")
    if best:
        parts.append(
            f"<b>best: trial {best['number']} (task {best['task_id']}), "
            f"{html.escape(value_text(best.get('value')))}</b>"
        )
    if sweep.get("note"):
        parts.append(f"<span style='color:#6c757d'>{html.escape(str(sweep['note']))}</span>")
    return f"<div style='font-size:12px'>{'; '.join(parts)}</div>"


@dataclass(frozen=True)
class TrialRow:
    """One trial as its table row says it, in values."""

    number: int
    task_id: int
    state: str
    value: float | None
    params: tuple[str, ...]  # each searched key's value, as text, in `searched_keys` order
    best: bool


def trial_rows(sweep: Mapping[str, Any]) -> list[TrialRow]:
    """The sweep's trials best first (those without an objective after, by number)."""
    keys = searched_keys(sweep)
    best = (sweep.get("best") or {}).get("number")
    views = [
        TrialView(t["number"], t["task_id"], t["params"], TrialState(t["state"]), t["value"])
        for t in sweep["trials"]
    ]
    return [
        TrialRow(
            number=t.number,
            task_id=t.task_id,
            state=t.state.value,
            value=t.value,
            params=tuple(param_text(t.params.get(key)) for key in keys),
            best=t.number == best,
        )
        for t in best_first(views, str(sweep.get("direction") or "maximize"))
    ]


def trials_table_html(sweep: Mapping[str, Any]) -> str:
    keys = searched_keys(sweep)
    heads = ["trial", "task", "state", sweep.get("metric") or "objective", *keys]
    head = "".join(
        f"<th style='text-align:left;padding:2px 6px'>{html.escape(h)}</th>" for h in heads
    )
    rows = []
    for row in trial_rows(sweep):
        shade = f"background:{BEST_SHADE};font-weight:bold" if row.best else ""
        number = f"{row.number} (best)" if row.best else str(row.number)
        cells = [
            html.escape(number),
            str(row.task_id),
            state_badge(row.state),
            html.escape(value_text(row.value)),
            *(
                f"<span title='{html.escape(p)}'>{html.escape(short(p, 30))}</span>"
                for p in row.params
            ),
        ]
        rows.append(
            f"<tr style='{shade}'>"
            + "".join(f"<td style='padding:2px 6px'>{c}</td>" for c in cells)
            + "</tr>"
        )
    if not rows:
        rows.append(f"<tr><td colspan='{len(heads)}'><i>no trials queued yet</i></td></tr>")
    return (
        "<div style='max-height:300px;overflow:auto'><table style='border-collapse:collapse;"
        f"font-size:12px'><tr>{head}</tr>{''.join(rows)}</table></div>"
    )


@dataclass(frozen=True)
class Points:
    """The trials that have an objective, as one scatter chart draws them."""

    x_label: str
    xs: list[float]
    ys: list[float]
    colours: list[str]  # each point's trial state's colour
    labels: list[str]  # what hovering a point says
    best: int | None  # the index of the best trial's point
    whole_x: bool = False  # x is a count or an index: ticks at whole numbers only


def objective_points(sweep: Mapping[str, Any], key: str | None = None) -> Points:
    """Each judged trial's objective against its number (`key` None) or a searched key's value."""
    trials = [t for t in sweep["trials"] if _finite(t.get("value"))]
    best = (sweep.get("best") or {}).get("number")
    if key is None:
        xs, x_label = [float(t["number"]) for t in trials], NUMBER_AXIS
    else:
        xs, x_label = _placed([t["params"].get(key) for t in trials], key, sweep)
    whole = key is None or x_label.startswith(f"{key} (")  # the number, or a choice's index
    kept = [(x, t) for x, t in zip(xs, trials, strict=True) if math.isfinite(x)]
    return Points(
        x_label=x_label,
        xs=[x for x, _ in kept],
        ys=[float(t["value"]) for _, t in kept],
        colours=[STATE_COLOURS.get(t["state"], "#6c757d") for _, t in kept],
        labels=[_point_label(t) for _, t in kept],
        best=next((i for i, (_, t) in enumerate(kept) if t["number"] == best), None),
        whole_x=whole,
    )


def padded_range(values: Sequence[float], share: float = 0.08) -> tuple[float, float] | None:
    """The axis range around `values` with a margin, so a point at either end is drawn whole
    rather than cut in half by the axis; None when there are none."""
    if not values:
        return None
    low, high = min(values), max(values)
    margin = (high - low) * share or max(abs(low) * share, 0.5)
    return low - margin, high + margin


def _placed(values: Sequence[Any], key: str, sweep: Mapping[str, Any]) -> tuple[list[float], str]:
    """Where each value sits on the x axis, and what the axis says it is."""
    if not all(_finite(v) for v in values):
        seen = list(dict.fromkeys(param_text(v) for v in values))
        named = ", ".join(f"{i}: {short(v, 12)}" for i, v in enumerate(seen))
        return [float(seen.index(param_text(v))) for v in values], f"{key} ({named})"
    numbers = [float(v) for v in values]
    search = (sweep.get("search") or {}).get(key) or {}
    spread = min(numbers, default=0) > 0 and max(numbers) / min(numbers) >= LOG_SPAN_RATIO
    if search.get("distribution") == "loguniform" or spread:
        return [math.log10(n) if n > 0 else math.nan for n in numbers], f"log10 of {key}"
    return numbers, key


def _point_label(trial: Mapping[str, Any]) -> str:
    params = params_text(trial["params"])
    return f"trial {trial['number']} (task {trial['task_id']}, {trial['state']}): {params}"


def svg_scatter(points: Points, width: int = 300, height: int = 200) -> str:
    """The chart as SVG circles (the best one ringed), when bqplot is not installed."""
    if not points.xs:
        return "<i>no trial has an objective yet</i>"
    x0, x1, y0, y1 = min(points.xs), max(points.xs), min(points.ys), max(points.ys)
    sx, sy = (width - 40) / ((x1 - x0) or 1), (height - 40) / ((y1 - y0) or 1)
    dots = []
    for index, (x, y) in enumerate(zip(points.xs, points.ys, strict=True)):
        cx, cy = 30 + (x - x0) * sx, height - 25 - (y - y0) * sy
        ring = ' stroke="black" stroke-width="2"' if index == points.best else ""
        dots.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{6 if ring else 4}"'
            f' fill="{points.colours[index]}"{ring}>'
            f"<title>{html.escape(points.labels[index])}</title></circle>"
        )
    return (
        f'<svg width="{width}" height="{height}" style="border:1px solid #ddd">{"".join(dots)}'
        f'<text x="4" y="12" font-size="10">{y1:.4g}</text>'
        f'<text x="4" y="{height - 14}" font-size="10">{y0:.4g}</text>'
        f'<text x="{width / 2:.0f}" y="{height - 2}" font-size="10" text-anchor="middle">'
        f"{html.escape(points.x_label)}</text></svg>"
    )


def overlay_task_ids(sweep: Mapping[str, Any], limit: int) -> list[int]:
    """The trials whose curves the Metrics tab overlays: the best `limit` (it draws no more),
    best first, so that a long sweep shows its leaders rather than its first trials."""
    return [row.task_id for row in trial_rows(sweep)][:limit]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
