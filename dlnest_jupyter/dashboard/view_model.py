"""What the dashboard shows, as pure functions over the API's JSON: no widgets, no I/O.

Every text a user or a task supplied (descriptions, paths, errors, output, metric keys) passes
through `html.escape` here, the one place HTML is built; a description such as
`<img src=x onerror=alert(1)>` shows those characters.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client.client import scheduled_by
from ..core.devices import CPU_ID
from ..core.tasks import TaskState

STATE_COLOURS = {
    TaskState.QUEUED: "#6c757d",
    TaskState.STARTING: "#6ea8fe",
    TaskState.RUNNING: "#0d6efd",
    TaskState.SUCCEEDED: "#198754",
    TaskState.FAILED: "#dc3545",
    TaskState.CANCELLED: "#adb5bd",
}
ALL_STATES = "all"
WINDOW_ROWS = 50  # a window of the queue, newest first: 1,000 tasks stay fast


@dataclass
class TaskBook:
    """The tasks the dashboard knows, kept current from `GET tasks?since=V` replies."""

    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    version: int | None = None

    def merge(self, reply: Mapping[str, Any]) -> bool:
        """Fold a reply in; True when anything shown may have changed."""
        changed = self.version is None or bool(reply["tasks"])
        for task in reply["tasks"]:
            self.tasks[task["id"]] = task
        self.version = reply["version"]
        return changed

    def newest_first(self) -> list[dict[str, Any]]:
        return [self.tasks[i] for i in sorted(self.tasks, reverse=True)]


def visible(
    tasks: Iterable[Mapping[str, Any]], state: str, text: str, limit: int = WINDOW_ROWS
) -> tuple[list[Mapping[str, Any]], int]:
    """The tasks that pass the filters, at most `limit` of them, and how many passed in all."""
    wanted = text.strip().lower()
    passed = [
        t
        for t in tasks
        if (state == ALL_STATES or t["state"] == state) and (not wanted or wanted in _searchable(t))
    ]
    return passed[:limit], len(passed)


def _searchable(task: Mapping[str, Any]) -> str:
    return " ".join(
        str(task.get(k) or "") for k in ("id", "kind", "state", "description", "package_path")
    ).lower()


def fraction_done(task: Mapping[str, Any]) -> float | None:
    """How far a training task is, 0 to 1, when its epoch count is known."""
    progress = task.get("progress") or {}
    epochs, epoch = progress.get("epochs"), progress.get("epoch")
    if not isinstance(epochs, int) or not isinstance(epoch, int) or epochs <= 0:
        return None
    steps, step = progress.get("steps_per_epoch"), progress.get("iter")
    within = (
        (step + 1) / steps if isinstance(steps, int) and steps > 0 and isinstance(step, int) else 0
    )
    return min(1.0, max(0.0, (epoch - 1 + min(within, 1.0)) / epochs))


def eta_s(task: Mapping[str, Any], now: float) -> float | None:
    """Seconds left for a running task, from its pace so far, when its epoch count is known."""
    done, started = fraction_done(task), task.get("started_at")
    if task.get("state") != TaskState.RUNNING or not done or not isinstance(started, int | float):
        return None
    return (now - float(started)) * (1 - done) / done


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def devices_text(ids: Sequence[int]) -> str:
    return ", ".join("CPU" if d == CPU_ID else f"GPU {d}" for d in ids)


def state_badge(state: str) -> str:
    colour = STATE_COLOURS.get(state, "#6c757d")  # type: ignore[call-overload]
    return (
        f'<span style="background:{colour};color:white;border-radius:3px;padding:0 5px">'
        f"{html.escape(state)}</span>"
    )


def progress_bar(fraction: float | None, label: str) -> str:
    if fraction is None:
        return html.escape(label)
    return (
        '<div style="display:flex;align-items:center;gap:6px">'
        '<div style="width:80px;height:10px;background:#e9ecef;border-radius:3px">'
        f'<div style="width:{round(fraction * 100)}%;height:10px;background:#0d6efd;'
        'border-radius:3px"></div></div>'
        f'<span style="white-space:nowrap">{html.escape(label)}</span></div>'
    )


def queue_html(
    tasks: Sequence[Mapping[str, Any]], selected: int | None, total: int, now: float | None = None
) -> str:
    now = time.time() if now is None else now
    head = "".join(
        f"<th style='text-align:left;padding:2px 8px'>{h}</th>"
        for h in ("id", "kind", "state", "description", "devices", "MiB", "progress", "rate", "elapsed", "ETA")
    )  # fmt: skip
    rows = []
    for task in tasks:
        progress = task.get("progress") or {}
        epoch, step = progress.get("epoch"), progress.get("iter")
        label = f"epoch {epoch} step {step}" if epoch is not None else ""
        if progress.get("analyzer"):
            label = f"analyzer {progress['analyzer']}, {progress.get('experiments', 0)} experiments"
        rate = progress.get("steps_per_s")
        end = task.get("ended_at") or now
        cells = [
            str(task["id"]),
            html.escape(str(task["kind"])),
            state_badge(str(task["state"])),
            html.escape(_short(task.get("description") or "", 60))
            + (
                f'<br><span style="color:#dc3545">{html.escape(_short(task["error"], 120))}</span>'
                if task.get("error")
                else ""
            ),
            html.escape(devices_text(task.get("devices") or [])),
            "" if task.get("memory_mb") is None else str(task["memory_mb"]),
            progress_bar(fraction_done(task), label),
            f"{rate:.1f}/s" if isinstance(rate, int | float) and math.isfinite(rate) else "",
            duration(end - task["started_at"]) if task.get("started_at") else "",
            duration(eta_s(task, now)),
        ]
        shade = "background:#fff3cd;" if task["id"] == selected else ""
        rows.append(
            f"<tr style='{shade}'>"
            + "".join(f"<td style='padding:2px 8px;vertical-align:top'>{c}</td>" for c in cells)
            + "</tr>"
        )
    shown = f"{len(tasks)} of {total} tasks" if total > len(tasks) else f"{total} tasks"
    return (
        f"<div style='font-size:12px;color:#555'>{shown}</div>"
        f"<table style='border-collapse:collapse;font-size:12px'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def device_bar_html(device: Mapping[str, Any]) -> str:
    """One card as one stacked bar: memory used by other processes, reserved by other users'
    schedulers (with a box ledger), reserved by our tasks, and free."""
    name = html.escape(
        f"{'GPU ' + str(device['id']) if device['kind'] == 'gpu' else 'CPU'}: {device['name']}"
    )
    holders = ", ".join(map(str, device.get("task_ids") or [])) or "none"
    enabled = "" if device.get("enabled", True) else " <b>(disabled)</b>"
    if device["kind"] != "gpu":
        return f"<div style='font-size:12px'>{name}{enabled}; tasks: {html.escape(holders)}</div>"
    total = max(1, device["memory_total_mb"] or 1)
    reserved, theirs, free = (
        device.get("memory_reserved_mb") or 0,
        device.get("memory_reserved_by_others_mb") or 0,
        max(0, device.get("memory_free_mb") or 0),
    )
    others = max(0, total - reserved - theirs - free)
    users = ", ".join(device.get("other_users") or [])
    parts = "".join(
        f'<div title="{label}: {mb} MiB" style="width:{100 * mb / total:.2f}%;background:{colour}"></div>'
        for label, mb, colour in (
            ("used by other processes", others, "#fd7e14"),
            (html.escape(f"reserved by other users ({users})"), theirs, "#6f42c1"),
            ("reserved by our tasks", reserved, "#0d6efd"),
            ("free", free, "#d1e7dd"),
        )
    )
    utilization = device.get("utilization_pct")
    util = f", {utilization}% busy" if utilization is not None else ""
    by_users = f" / {theirs} reserved by {html.escape(users)}" if theirs else ""
    return (
        f"<div style='font-size:12px'>{name}{enabled}: {others} others{by_users} / {reserved} "
        f"reserved / {free} free of {total} MiB{util}; tasks: {html.escape(holders)}</div>"
        f'<div style="display:flex;width:360px;height:12px;border:1px solid #ccc">{parts}</div>'
    )


def scheduler_html(scheduler: Mapping[str, Any]) -> str:
    """Which service places this queue's tasks (several Jupyter servers may share one queue)."""
    text = scheduled_by(dict(scheduler))
    return (
        f"<div style='font-size:12px;color:#555'>{html.escape(text[0].upper() + text[1:])}.</div>"
    )


def devices_note(devices: Sequence[Mapping[str, Any]]) -> str:
    """One line above the cards: pretend cards said so, and why there are none when none."""
    gpus = [d for d in devices if d["kind"] == "gpu"]
    if any(d.get("source") == "fake" for d in gpus):
        return (
            "<i>Pretend GPUs (DLNEST_FAKE_GPUS or the fake_gpus setting): placement and memory"
            " are simulated, tasks run on the CPU.</i>"
        )
    if not gpus:
        why = next((d.get("reason") for d in devices if d.get("reason")), None)
        return html.escape(f"No GPU{': ' + why if why else ''}. Tasks run on the CPU.").join(
            ("<i>", "</i>")
        )
    nodes = sorted({d["node"] for d in gpus if d.get("node")})
    if nodes:
        return html.escape(
            f"The Ray cluster's cards: {len(gpus)} on {len(nodes)} machine"
            f"{'s' if len(nodes) > 1 else ''}. CPU tasks and analyzers run on this server's machine.",
            quote=False,
        ).join(("<i>", "</i>"))
    return ""


def node_heading_html(node: str, devices: Sequence[Mapping[str, Any]]) -> str:
    """Above a cluster machine's cards: its name and how much of it is free."""
    cards = [d for d in devices if d.get("node") == node]
    free = sum(max(0, d.get("memory_free_mb") or 0) for d in cards)
    total = sum(d.get("memory_total_mb") or 0 for d in cards)
    plural = "s" if len(cards) != 1 else ""
    return (
        f"<div style='font-size:12px;margin-top:6px'><b>{html.escape(node)}</b>: "
        f"{len(cards)} card{plural}, {free} of {total} MiB free</div>"
    )


def numeric_keys(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The keys worth a curve, a loss first: numeric, not the epoch, not ours (`_launch`...)."""
    keys = {
        k
        for row in rows
        for k, v in row.items()
        if isinstance(v, int | float)
        and not isinstance(v, bool)
        and k != "epoch"
        and not k.startswith("_")
    }
    return sorted(keys, key=lambda k: ("loss" not in k.lower(), k))


def series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of `key`, rows without a finite value left out."""
    xs, ys = [], []
    for index, row in enumerate(rows):
        value = row.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            epoch = row.get("epoch")
            xs.append(float(epoch) if isinstance(epoch, int | float) else float(index + 1))
            ys.append(float(value))
    return xs, ys


def summary_html(
    runs: Mapping[int, tuple[list[float], list[float]]],
    key: str,
    labels: Mapping[int, str] | None = None,
) -> str:
    """Per run: best (the lower for loss-like keys), last, min and max of `key`."""
    lower_is_better = any(word in key.lower() for word in ("loss", "err", "mse", "mae"))
    rows = []
    for task_id, (_, ys) in runs.items():
        if not ys:
            continue
        best = min(ys) if lower_is_better else max(ys)
        name = html.escape((labels or {}).get(task_id, f"task {task_id}"))
        cells = (name, *(f"{v:.4g}" for v in (best, ys[-1], min(ys), max(ys))))
        rows.append(
            "<tr>" + "".join(f"<td style='padding:0 8px'>{c}</td>" for c in cells) + "</tr>"
        )
    head = "".join(
        f"<th style='padding:0 8px'>{h}</th>" for h in ("run", "best", "last", "min", "max")
    )
    return (
        f"<table style='font-size:12px'><caption>{html.escape(key)}</caption>"
        f"<tr>{head}</tr>{''.join(rows)}</table>"
    )


def svg_chart(
    runs: Mapping[int, tuple[list[float], list[float]]], width: int = 480, height: int = 220
) -> str:
    """Curves as an SVG polyline per run: the chart when no widget chart library is installed."""
    points = [(x, y) for xs, ys in runs.values() for x, y in zip(xs, ys, strict=True)]
    if not points:
        return "<i>no metric rows yet</i>"
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    sx = (width - 20) / ((x1 - x0) or 1)
    sy = (height - 20) / ((y1 - y0) or 1)
    lines = []
    for index, (task_id, (xs, ys)) in enumerate(runs.items()):
        colour = PALETTE[index % len(PALETTE)]
        coords = " ".join(
            f"{10 + (x - x0) * sx:.1f},{height - 10 - (y - y0) * sy:.1f}"
            for x, y in zip(xs, ys, strict=True)
        )
        lines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}">'
            f"<title>task {task_id}</title></polyline>"
        )
    return (
        f'<svg width="{width}" height="{height}" style="border:1px solid #ddd">{"".join(lines)}'
        f'<text x="10" y="12" font-size="10">{y1:.4g}</text>'
        f'<text x="10" y="{height - 2}" font-size="10">{y0:.4g}</text></svg>'
    )


PALETTE = ("#0d6efd", "#dc3545", "#198754", "#fd7e14", "#6f42c1", "#20c997", "#6c757d")


def output_html(text: str) -> str:
    return (
        "<pre style='max-height:260px;overflow:auto;font-size:11px;background:#f8f9fa;"
        f"margin:0;padding:4px'>{html.escape(text)}</pre>"
    )


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
