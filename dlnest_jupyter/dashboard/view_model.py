"""What the dashboard shows, as pure functions over the API's JSON: no widgets, no I/O.

Every text a user or a task supplied (descriptions, paths, errors, output, metric keys) passes
through `html.escape` here, the one place HTML is built; a description such as
`<img src=x onerror=alert(1)>` shows those characters.
"""

from __future__ import annotations

import html
import math
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
    TaskState.PRUNED: "#fd7e14",
}
ALL_STATES = "all"
NOT_ENDED = "not ended"  # queued, starting or running: what a long queue's history hides
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
            before = self.tasks.get(task["id"])
            # A task reports progress only while it runs: a stopped one keeps what it reached.
            if before and task["state"] == TaskState.CANCELLED and not _reported(task):
                task = {**task, "progress": before.get("progress")}
            self.tasks[task["id"]] = task
        self.version = reply["version"]
        return changed

    def newest_first(self) -> list[dict[str, Any]]:
        return [self.tasks[i] for i in sorted(self.tasks, reverse=True)]


def _reported(task: Mapping[str, Any]) -> bool:
    progress = task.get("progress") or {}
    return progress.get("epoch") is not None or bool(progress.get("analyzer"))


def visible(
    tasks: Iterable[Mapping[str, Any]], state: str, text: str, limit: int = WINDOW_ROWS
) -> tuple[list[Mapping[str, Any]], int]:
    """The tasks that pass the filters, at most `limit` of them, and how many passed in all."""
    wanted = text.strip().lower()
    passed = [
        t
        for t in tasks
        if _in_state(t["state"], state) and (not wanted or wanted in _searchable(t))
    ]
    return passed[:limit], len(passed)


def _in_state(task_state: str, wanted: str) -> bool:
    if wanted == NOT_ENDED:
        return not TaskState(task_state).terminal
    return wanted in (ALL_STATES, task_state)


def _searchable(task: Mapping[str, Any]) -> str:
    return " ".join(
        str(task.get(k) or "") for k in ("id", "kind", "state", "description", "package_path")
    ).lower()


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
    measured = device.get("memory_measured_mb")  # what our tasks use of what they reserved
    used = min(reserved, measured) if isinstance(measured, int) else reserved
    others = max(0, total - reserved - theirs - free)
    users = ", ".join(device.get("other_users") or [])
    in_use = total - free
    parts = "".join(
        f'<div title="{label}: {mb:,} MiB" style="width:{100 * mb / total:.2f}%;background:{colour}"></div>'
        for label, mb, colour in (
            ("used by other processes", others, "#fd7e14"),
            (html.escape(f"reserved by other users ({users})"), theirs, "#6f42c1"),
            (
                "used by our tasks (measured)" if measured is not None else "reserved by our tasks",
                used,
                "#0d6efd",
            ),
            ("reserved by our tasks, not used", reserved - used, "#9ec5fe"),
            ("free", free, "#d1e7dd"),
        )
    )
    utilization = device.get("utilization_pct")
    util = f", {utilization}% busy" if utilization is not None else ""
    by_users = f" / {theirs:,} reserved by {html.escape(users)}" if theirs else ""
    in_it = f" ({measured:,} used)" if isinstance(measured, int) else ""
    return (
        f"<div style='font-size:12px'>{name}{enabled}: {others:,} others{by_users} / "
        f"{reserved:,} reserved{in_it} / {free:,} free of {total:,} MiB{util}; tasks: "
        f"{html.escape(holders)}</div>"
        f'<div role="progressbar" aria-label="{name} memory in use, MiB" aria-valuemin="0"'
        f' aria-valuenow="{in_use}" aria-valuemax="{total}"'
        f' style="display:flex;width:360px;height:12px;border:1px solid #ccc">{parts}</div>'
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


def output_html(text: str) -> str:
    """A task's output, showing its newest lines: a column laid out bottom up starts scrolled
    to its end, and each update (a new element) does so again, as `%dlnest watch` follows.
    The text never shrinks to the column's height (`flex:none`): JupyterLab gives a `pre`
    `overflow:auto`, and a shrunk one scrolled itself, at its top, inside the column."""
    return (
        "<div style='display:flex;flex-direction:column-reverse;max-height:260px;overflow:auto;"
        "background:#f8f9fa'><pre style='font-size:11px;margin:0;padding:4px;flex:none;"
        f"overflow:visible'>{html.escape(text)}</pre></div>"
    )


def short(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, an ellipsis saying so."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


STALE_STYLE = (
    "<style>@keyframes dlnest-stale{to{visibility:visible}}"
    "@keyframes dlnest-live{to{visibility:hidden}}</style>"
)


def status_html(colour: str, said: str, stale_after_s: float | None, clock: str) -> str:
    """The status line (`said` is HTML already), and its "stopped" twin.

    A kernel that restarted leaves its widgets showing their last values: a green dot and a
    clock that no longer moves. So the line is drawn with a twin that a CSS animation shows,
    in its place, `stale_after_s` after it was drawn; each refresh draws the line anew, which
    restarts the animation, so the twin appears only once the refreshes have stopped. CSS
    alone: no script runs in an HTML widget, and none could outlive its kernel anyway."""
    dot = f"<span style='color:{colour}'>●</span> "
    if stale_after_s is None:
        return f"<span>{dot}{said}</span>"
    stale = (
        "<span style='color:#6c757d'>●</span> stopped (kernel restarted?): no update since"
        f" {html.escape(clock)}; run the dashboard's cell again"
    )
    delay = f"animation:dlnest-{{}} 0s linear {stale_after_s:g}s forwards"
    return (
        f"{STALE_STYLE}<span style='display:inline-grid'>"
        f"<span style='grid-area:1/1;{delay.format('live')}'>{dot}{said}</span>"
        f"<span style='grid-area:1/1;visibility:hidden;{delay.format('stale')}'>{stale}</span>"
        "</span>"
    )


def plural(count: object, noun: str) -> str:
    """ "1 experiment", "4 experiments"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def whole_ticks(values: Sequence[float], most: int = 10) -> list[int]:
    """Ticks at whole numbers over `values`, at most about `most` of them."""
    if not values:
        return []
    low, high = math.floor(min(values)), math.ceil(max(values))
    step = max(1, math.ceil((high - low) / most))
    return list(range(low, high + 1, step))
