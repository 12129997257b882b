"""The queue tab's rows and the checkpoint picker, as pure functions over the API's JSON.

`queue_rows` says what each row shows, in values; `queue_row_html` alone turns one into HTML.

A row is its own small table with the header's fixed column widths, so that each row can sit
beside its own select button (a click on an HTML widget reaches no Python) and still line up.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..client.views import memory_text
from ..core import durations
from ..core.tasks import TaskState
from .view_model import devices_text, duration, short, state_badge

# Shares of the row's width, so the columns shrink with the notebook rather than being cut.
COLUMNS_PCT = (
    ("kind", 7),
    ("state", 12),
    ("description", 20),
    ("devices", 8),
    ("MiB", 11),  # "14,745 held" on one line
    ("progress", 21),
    ("steps/s", 7),
    ("elapsed", 7),
    ("ETA", 7),
)
_CELL = (  # 18 px lines: the widget's own 28 px made a two-line row 60 px high
    "padding:2px 4px;vertical-align:top;overflow:hidden;text-overflow:ellipsis;line-height:18px"
)


def fraction_done(task: Mapping[str, Any]) -> float | None:
    """How far a training task is, 0 to 1, when its epoch count is known (core/durations.py)."""
    return durations.fraction_done(task.get("progress") or {})


def eta_s(task: Mapping[str, Any]) -> float | None:
    """Seconds left for a running task (core/durations.py: its epochs left at its mean pace)."""
    if task.get("state") != TaskState.RUNNING:
        return None
    return durations.seconds_left(task.get("progress") or {})


def progress_bar(fraction: float | None, label: str, colour: str = "#0d6efd") -> str:
    """A bar screen readers and browser tests can read: role=progressbar with its value."""
    if fraction is None:
        return html.escape(label)
    percent = round(fraction * 100)
    return (
        '<div style="display:flex;align-items:center;gap:6px">'
        f'<div role="progressbar" aria-valuenow="{percent}" aria-valuemin="0"'
        f' aria-valuemax="100" aria-label="{html.escape(label)}"'
        ' style="width:80px;height:10px;background:#e9ecef;border-radius:3px">'
        f'<div style="width:{percent}%;height:10px;background:{colour};'
        'border-radius:3px"></div></div>'
        f'<span style="white-space:nowrap">{html.escape(label)}</span></div>'
    )


def _table(row: str) -> str:
    columns = "".join(f"<col style='width:{share}%'>" for _, share in COLUMNS_PCT)
    return (
        "<table style='table-layout:fixed;width:100%;border-collapse:collapse;font-size:12px'>"
        f"<colgroup>{columns}</colgroup>{row}</table>"
    )


def queue_header_html() -> str:
    cells = "".join(f"<th style='text-align:left;{_CELL}'>{h}</th>" for h, _ in COLUMNS_PCT)
    return _table(f"<tr>{cells}</tr>")


def queue_count_html(shown: int, total: int) -> str:
    noun = "task" if total == 1 else "tasks"
    text = f"{shown} of {total} {noun}" if total > shown else f"{total} {noun}"
    return f"<div style='font-size:12px;color:#555'>{text}</div>"


@dataclass(frozen=True)
class QueueRow:
    """One task as its queue row says it, in values; `queue_row_html` is the only place that
    turns a row into HTML."""

    id: int
    kind: str
    state: str
    description: str  # whole: the cell shortens it and shows it whole on hover
    waiting_for: str  # why a queued task waits; "" when it does not
    error: str  # the task's error; "" when none or when the state already says it
    devices: str
    memory: str  # the MiB column: held, else asked, else the default a queued task will take
    memory_note: str  # how its reservation followed what it used, on the column's hover
    progress: float | None  # 0 to 1, once the epoch count is known
    progress_label: str  # "epoch 2 step 4", or an analyzer's state and experiment count
    rate: str  # "12.5/s" while running
    rate_hint: str  # what the rate is, on hover
    elapsed: str
    eta: str
    selected: bool
    ended: bool  # a terminal state: its bar greys


def queue_rows(
    tasks: Sequence[Mapping[str, Any]], now: float, selected: int | None = None
) -> list[QueueRow]:
    """The queue's rows for `tasks`, in their order; `selected`: the chosen task's id."""
    return [_row(task, now, task["id"] == selected) for task in tasks]


def _row(task: Mapping[str, Any], now: float, selected: bool) -> QueueRow:
    progress = task.get("progress") or {}
    state = str(task["state"])
    label = durations.progress_label(progress)
    if progress.get("analyzer"):
        label = f"analyzer {progress['analyzer']}, {progress.get('experiments', 0)} experiments"
    rate, hint = _rate(progress) if state == TaskState.RUNNING else ("", "")
    error = task.get("error") or ""
    if state == TaskState.CANCELLED and error == "deleted":
        error = ""  # Stop records "deleted" as the error of the task it cancels: the state says it
    end = task.get("ended_at") or now
    return QueueRow(
        id=task["id"],
        kind=str(task["kind"]),
        state=state,
        description=task.get("description") or "",
        waiting_for=(task.get("waiting_for") or "") if state == TaskState.QUEUED else "",
        error=error,
        devices=devices_text(task.get("devices") or []),
        memory=memory_text(task),
        memory_note=task.get("memory_note") or "",
        progress=fraction_done(task),
        progress_label=label,
        rate=rate,
        rate_hint=hint,
        elapsed=duration(end - task["started_at"]) if task.get("started_at") else "",
        eta=duration(eta_s(task)),
        selected=selected,
        ended=TaskState(state).terminal,
    )


def _rate(progress: Mapping[str, Any]) -> tuple[str, str]:
    rate = progress.get("steps_per_s")
    if not _number(rate):
        return "", ""
    window_s = progress.get("rate_window_s")
    over = f" over the last {window_s:g} s" if _number(window_s) else ""
    return f"{rate:.1f}/s", f"steps per second{over}"


def queue_row_html(row: QueueRow) -> str:
    """One row's cells; a long description, a wait reason or an error shows whole on hover."""
    rate = f"<span title='{html.escape(row.rate_hint)}'>{html.escape(row.rate)}</span>"
    cells = [
        html.escape(row.kind),
        state_badge(row.state),
        _description_html(row),
        html.escape(row.devices),
        f"<span title='{html.escape(row.memory_note)}'>{html.escape(row.memory)}</span>",
        progress_bar(row.progress, row.progress_label, "#adb5bd" if row.ended else "#0d6efd"),
        rate if row.rate else "",
        html.escape(row.elapsed),
        html.escape(row.eta),
    ]
    shade = "background:#fff3cd;" if row.selected else ""
    return _table(
        f"<tr style='{shade}'>" + "".join(f"<td style='{_CELL}'>{c}</td>" for c in cells) + "</tr>"
    )


def _description_html(row: QueueRow) -> str:
    """The description, then why it waits or how it failed: a line each, cut to the column's
    width (whole on hover), so a sweep trial's long description keeps its row one line high."""
    lines = [_line(row.description, "inherit")]
    if row.waiting_for:
        lines.append(_line(f"waiting: {row.waiting_for}", "#6c757d"))
    if row.error:
        lines.append(_line(row.error, "#dc3545"))
    return "".join(lines)


def _line(text: str, colour: str) -> str:
    return (
        f"<div title='{html.escape(text)}' style='color:{colour};white-space:nowrap;"
        f"overflow:hidden;text-overflow:ellipsis'>{html.escape(short(text, 120))}</div>"
    )


def checkpoint_options(reply: Mapping[str, Any] | None, latest: int) -> list[tuple[str, int]]:
    """The picker's choices: `latest` first, then each held checkpoint, by branch when the
    package has several (a continue from an older checkpoint starts a branch)."""
    reply = reply or {}
    held = reply.get("checkpoints") or []
    head = reply.get("head")
    options = [(f"latest ({head})" if head is not None else "latest", latest)]
    branched = len({c.get("branch", 0) for c in held}) > 1 or len(reply.get("branches") or []) > 1
    if not branched:
        return options + [(f"{c['id']} (epoch {c['epoch']})", c["id"]) for c in held]
    branches = {b.get("id"): b for b in reply.get("branches") or []}
    for checkpoint in sorted(held, key=lambda c: (c.get("branch", 0), c["id"])):
        branch = branches.get(checkpoint.get("branch", 0)) or {}
        notes = [f"epoch {checkpoint['epoch']}"]
        if checkpoint["id"] == branch.get("head"):
            notes.append("its head")
        fork = branch.get("fork_checkpoint")
        if fork is not None and checkpoint.get("parent") == fork:
            notes.append(f"forked at {fork}")  # the branch's first: where it left its parent
        label = f"branch {checkpoint.get('branch', 0)}: {checkpoint['id']} ({', '.join(notes)})"
        options.append((label, checkpoint["id"]))
    return options


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
