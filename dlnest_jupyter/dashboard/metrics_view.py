"""What the Metrics tab shows, as pure functions over metric rows: no widgets, no I/O.

Rows are `_metrics.jsonl` lines, one per epoch. A row marked `_epoch_mean` holds each logged
list's mean over the epoch; older rows hold the last value logged, and the chart says which.
A package continued from an older checkpoint holds several branches (`_branch`); each is its
own line, starting from the row of its parent branch where it forked. Every key and name passes
through `html.escape` before HTML.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.package import EPOCH_MEAN_MARK

PALETTE = ("#0d6efd", "#dc3545", "#198754", "#fd7e14", "#6f42c1", "#20c997", "#6c757d")
X_AXES = {
    "epoch": "epoch",
    "step": "step (each value the run logged)",
    "time": "time since the first row (s)",
}


@dataclass(frozen=True)
class Line:
    """One curve: a run's branch, its points, and what to call it."""

    task_id: int
    branch: int
    label: str
    xs: list[float]
    ys: list[float]


def numeric_keys(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The keys worth a curve, a loss first: numeric, not the epoch, not ours (`_launch`...)."""
    keys = {
        k
        for row in rows
        for k, v in row.items()
        if _finite(v) and k != "epoch" and not k.startswith("_")
    }
    return sorted(keys, key=lambda k: ("loss" not in k.lower(), k))


def branch_of(row: Mapping[str, Any]) -> int:
    branch = row.get("_branch", 0)
    return branch if isinstance(branch, int) else 0


def branch_count(rows: Iterable[Mapping[str, Any]]) -> int:
    return len({branch_of(row) for row in rows})


def lines(
    task_id: int,
    label: str,
    rows: Sequence[Mapping[str, Any]],
    key: str,
    x_axis: str = "epoch",
    branches: Sequence[Mapping[str, Any]] | None = None,
) -> list[Line]:
    """A run's curves of `key`: one per branch, each from its fork point (`branches` as the
    checkpoints reply gives them; without, a branch starts at its own first row)."""
    first_time = next((float(r["_time"]) for r in rows if _finite(r.get("_time"))), 0.0)
    by_branch: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_branch.setdefault(branch_of(row), []).append(row)
    by_branch = {branch: _last_per_epoch(own) for branch, own in by_branch.items()}
    forks = {b["id"]: b for b in branches or [] if isinstance(b.get("id"), int)}
    drawn = []
    for branch, own in sorted(by_branch.items()):
        fork = forks.get(branch) or {}
        parent_rows = by_branch.get(fork.get("parent"), [])  # type: ignore[arg-type]
        start = [r for r in parent_rows if r.get("epoch") == fork.get("fork_epoch")][-1:]
        xs, ys = _points([*start, *own], key, x_axis, first_time)
        name = label if len(by_branch) == 1 else f"{label}, branch {branch}"
        drawn.append(Line(task_id, branch, name, xs, ys))
    return drawn


def _last_per_epoch(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A branch's rows, an epoch run twice (a run that died after its last checkpoint, then
    continued) once, as it ran last: else the line zig-zags back. Rows without an epoch stay."""
    last: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        if isinstance(row.get("epoch"), int):
            last[row["epoch"]] = row
    kept = set(map(id, last.values()))
    return [row for row in rows if id(row) in kept or not isinstance(row.get("epoch"), int)]


def step_lines(
    task_id: int,
    label: str,
    rows: Sequence[Mapping[str, Any]],
    key: str,
    branches: Sequence[Mapping[str, Any]] | None = None,
) -> list[Line]:
    """A run's curves of `key` step by step, from `_steps.jsonl` rows (per epoch, the values
    each step logged, evenly thinned when there were many): one per branch, a branch's steps
    counted on from where it forked. An epoch run twice in one branch (a run that died after
    its last checkpoint, then continued) counts once, as it ran last."""
    by_branch: dict[int, dict[int, Mapping[str, Any]]] = {}
    for row in rows:
        if isinstance(row.get("epoch"), int):
            by_branch.setdefault(branch_of(row), {})[row["epoch"]] = row
    forks = {b["id"]: b for b in branches or [] if isinstance(b.get("id"), int)}
    steps_done: dict[int, dict[int, float]] = {}  # branch -> epoch -> steps of `key` by its end
    drawn = []
    for branch, epochs in sorted(by_branch.items()):  # a parent's number is below its forks'
        fork = forks.get(branch) or {}
        done = steps_done.get(fork.get("parent"), {}).get(fork.get("fork_epoch"), 0.0)  # type: ignore[arg-type]
        xs, ys, ends = [], [], {}
        for epoch in sorted(epochs):
            values = (epochs[epoch].get("values") or {}).get(key)
            count = (epochs[epoch].get("counts") or {}).get(key)
            if isinstance(values, list) and values and isinstance(count, int):
                stride = count / len(values)
                for index, value in enumerate(values):
                    if _finite(value):
                        xs.append(done + index * stride + 1)
                        ys.append(float(value))
                done += count
            ends[epoch] = done
        steps_done[branch] = ends
        name = label if len(by_branch) == 1 else f"{label}, branch {branch}"
        drawn.append(Line(task_id, branch, name, xs, ys))
    return drawn


def step_keys(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The keys `_steps.jsonl` rows hold values of, a loss first."""
    keys = {k for row in rows for k in (row.get("values") or {})}
    return sorted(keys, key=lambda k: ("loss" not in k.lower(), k))


def _points(
    rows: Sequence[Mapping[str, Any]], key: str, x_axis: str, first_time: float
) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for index, row in enumerate(rows):
        value = _as_float(row.get(key))
        x = _as_float(row.get("_time" if x_axis == "time" else "epoch"))
        if value is None or (x_axis == "time" and x is None):
            continue
        if x is None:  # an epoch-less row: its place in the file
            x = float(index + 1)
        xs.append(x - first_time if x_axis == "time" else x)
        ys.append(value)
    return xs, ys


def smoothed(ys: Sequence[float], weight: float) -> list[float]:
    """An exponential moving average, debiased (TensorBoard's): the first points are not
    pulled towards 0. `weight` 0 returns the values as they are."""
    if weight <= 0:
        return list(ys)
    out, average = [], 0.0
    for count, y in enumerate(ys, 1):
        average = average * weight + (1 - weight) * y
        out.append(average / (1 - weight**count))
    return out


def log_values(ys: Sequence[float]) -> list[float]:
    """log10 of each value; a value at or below 0 has none and is drawn as NaN (a gap)."""
    return [math.log10(y) if y > 0 else math.nan for y in ys]


def values_note(rows: Iterable[Mapping[str, Any]]) -> str:
    """What a row's value is: the epoch's mean (marked rows) or the last logged value."""
    marks = {bool(row.get(EPOCH_MEAN_MARK)) for row in rows}
    if marks == {True}:
        return "each point: the epoch's mean"
    if marks == {False}:
        return "each point: the last value logged in the epoch (an older package)"
    return "each point: the epoch's mean (older rows: the last value logged in the epoch)"


def summary_html(drawn: Sequence[Line], key: str, lower_is_better: bool | None = None) -> str:
    """The legend, beside the chart rather than over it, names whole: per line its colour,
    best (the lower for loss-like keys), last, min and max of `key`."""
    if lower_is_better is None:
        lower_is_better = any(word in key.lower() for word in ("loss", "err", "mse", "mae"))
    rows = []
    for index, line in enumerate(drawn):
        if not line.ys:
            continue
        best = min(line.ys) if lower_is_better else max(line.ys)
        swatch = f"<span style='color:{PALETTE[index % len(PALETTE)]}'>■</span> "
        cells = (
            swatch + html.escape(line.label),
            *(f"{v:.4g}" for v in (best, line.ys[-1], min(line.ys), max(line.ys))),
        )
        name, *numbers = cells  # the name wraps, but never into a sliver beside the numbers
        rows.append(
            f"<tr><td style='padding:0 8px;min-width:140px'>{name}</td>"
            + "".join(f"<td style='padding:0 8px'>{c}</td>" for c in numbers)
            + "</tr>"
        )
    head = "".join(
        f"<th style='padding:0 8px'>{h}</th>" for h in ("run", "best", "last", "min", "max")
    )
    return (
        f"<table style='font-size:12px'><caption>{html.escape(key)}</caption>"
        f"<tr>{head}</tr>{''.join(rows)}</table>"
    )


def svg_chart(drawn: Sequence[Line], width: int = 480, height: int = 220) -> str:
    """Curves as an SVG polyline per line: the chart when no widget chart library is installed."""
    points = [(x, y) for line in drawn for x, y in zip(line.xs, line.ys, strict=True) if _finite(y)]
    if not points:
        return "<i>no metric rows yet</i>"
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    sx = (width - 20) / ((x1 - x0) or 1)
    sy = (height - 20) / ((y1 - y0) or 1)
    polylines = []
    for index, line in enumerate(drawn):
        colour = PALETTE[index % len(PALETTE)]
        coords = " ".join(
            f"{10 + (x - x0) * sx:.1f},{height - 10 - (y - y0) * sy:.1f}"
            for x, y in zip(line.xs, line.ys, strict=True)
            if _finite(y)
        )
        polylines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}">'
            f"<title>{html.escape(line.label)}</title></polyline>"
        )
    return (
        f'<svg width="{width}" height="{height}" style="border:1px solid #ddd">'
        f'{"".join(polylines)}<text x="10" y="12" font-size="10">{y1:.4g}</text>'
        f'<text x="10" y="{height - 2}" font-size="10">{y0:.4g}</text></svg>'
    )


def rows_csv(rows_by_task: Mapping[int, Sequence[Mapping[str, Any]]]) -> str:
    """The rows shown, as CSV: the task, then our columns, then every metric key."""
    rows = [row for task_rows in rows_by_task.values() for row in task_rows]
    keys = numeric_keys(rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["task", "branch", "epoch", "time", *keys])
    for task_id, task_rows in rows_by_task.items():
        for row in task_rows:
            writer.writerow(
                [task_id, branch_of(row), row.get("epoch"), row.get("_time")]
                + [row.get(k, "") for k in keys]
            )
    return out.getvalue()


def _as_float(value: Any) -> float | None:
    return float(value) if _finite(value) else None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
