"""What the `%dlnest` commands show and return: tables, task rows, and the values a cell gets.

Fields a newer server adds (`waiting_for`, `reserved_mb`, `peak_memory_mb`) are shown when present and simply
left out when an older server does not send them.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from IPython.display import display

from ..core.devices import CPU_ID
from ..core.durations import progress_label
from ..core.placement_values import DEFAULT_MEMORY_TEXT
from ..core.tasks import TaskState

DEFAULT_MEMORY = f"default ({DEFAULT_MEMORY_TEXT})"


class Table:
    """Rows shown as an HTML table in notebooks and as aligned text elsewhere."""

    def __init__(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.columns, self.rows = (
            list(columns),
            [["" if v is None else str(v) for v in row] for row in rows],
        )

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        widths = [
            max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
            for i, c in enumerate(self.columns)
        ]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))]
        lines += [
            "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in self.rows
        ]
        return "\n".join(lines) if self.rows else lines[0] + "\n(none)"


class TaskRef(dict[str, Any]):
    """A task as the server replied (its REST TASK); `.id` is its id. A cell's last line shows
    it as one short line, not the whole record."""

    @property
    def id(self) -> int:
        return int(self["id"])

    def __repr__(self) -> str:
        return f"<dlnest task {self['id']}: {self['kind']}, {self['state']}>"


class ExperimentRef(dict[str, Any]):
    """An experiment as it ended (its REST EXPERIMENT, less the output already shown), with the
    analyzer's task id; `.id`, `.state` and `.result` (the text of what it returned)."""

    @property
    def id(self) -> int:
        return int(self["id"])

    @property
    def state(self) -> str:
        return str(self["state"])

    @property
    def result(self) -> str | None:
        value = self.get("result")
        return None if value is None else str(value)

    def __repr__(self) -> str:
        return f"<dlnest experiment {self['id']} of analyzer {self['task_id']}: {self['state']}>"


def show(shown: Any) -> None:
    display(shown)  # type: ignore[no-untyped-call]


def devices_text(ids: Sequence[int]) -> str:
    return ", ".join("CPU" if d == CPU_ID else f"GPU {d}" for d in ids)


def memory_text(task: Mapping[str, Any]) -> str:
    """What the task holds now, else what it asked for, else (queued) the default it will take;
    and the most it used, once measured.

    The magics' table and the dashboard's queue both show this, so both say the same.
    """
    if task.get("cpu"):
        return "CPU"  # -CPU: no GPU memory
    reserved, asked, peak = (
        task.get("reserved_mb"),
        task.get("memory_mb"),
        task.get("peak_memory_mb"),
    )
    used = f"peak {peak:,}" if isinstance(peak, int) else ""
    if task.get("memory_over"):  # it used more than it had reserved (memory_note says when)
        used = f"{used} ⚠ over" if used else "⚠ over"
    if isinstance(reserved, int):
        return f"{reserved:,} held" + (f", {used}" if used else "")
    if used:  # ended: what it used says more than what it had asked for
        return used
    if isinstance(asked, int):
        return f"{asked:,}"
    learned = task.get("memory_learned_mb")
    if isinstance(learned, int):  # what its job's runs used, or what it reached before a retry
        return f"{learned:,} learned"
    return DEFAULT_MEMORY if task.get("state") == TaskState.QUEUED else ""


def reservation_sentence(task: dict[str, Any], ddp: bool = False) -> str:
    """What a submission reserves, as `run` and `analyze` say it; `ddp`: it was asked for
    -DDP, whose learned figure is each rank's."""
    asked, reserved = task.get("memory_mb"), task.get("reserved_mb")
    default = f"the default, {DEFAULT_MEMORY_TEXT}"
    placed = task["state"] != "queued"
    runs = task.get("memory_learned_runs")
    if task.get("memory_source") == "learned":
        learned = reserved if reserved is not None and not ddp else task.get("memory_learned_mb")
        what = f"{learned:,} MiB" + (" for each DDP rank" if ddp else "")
        earlier = (
            f"learned from {runs} earlier run{'s' if runs != 1 else ''} of this config"
            if isinstance(runs, int)
            else "what it reached before it ran out of GPU memory"  # a retry
        )
        if placed:
            return f"reserved {what}, {earlier}"
        return f"reserves {what} once placed, {earlier}"
    if reserved is not None:
        return f"reserved {reserved:,} MiB" + ("" if asked is not None else f" ({default})")
    if asked is not None:
        return f"reserved {asked:,} MiB" if placed else f"reserves {asked:,} MiB once placed"
    return f"reserved {default}" if placed else f"reserves {default}, once placed"


def progress_text(task: dict[str, Any]) -> str:
    """Where it is, and while it runs its steps per second (an ended run's last rate is no
    rate at all)."""
    progress = task.get("progress") or {}
    label = progress_label(progress)
    rate = progress.get("steps_per_s") if task.get("state") == TaskState.RUNNING else None
    return label + (f" ({rate:.0f}/s)" if label and isinstance(rate, int | float) and rate else "")


def recent_tasks(
    tasks: Sequence[dict[str, Any]], ended_shown: int
) -> tuple[list[dict[str, Any]], int]:
    """The tasks still queued or holding devices, and the `ended_shown` that ended last, in
    their order; and how many older ended ones were left out (a week's runs and sweeps would
    bury the queue, as DLNest's list, which forgot ended tasks, never did)."""
    ended = [t for t in tasks if TaskState(t["state"]).terminal]
    newest = sorted(ended, key=lambda t: (t.get("ended_at") or 0.0, t["id"]))[-ended_shown:]
    kept_ids = {t["id"] for t in newest} if ended_shown > 0 else set()
    shown = [t for t in tasks if not TaskState(t["state"]).terminal or t["id"] in kept_ids]
    return shown, len(tasks) - len(shown)


ERROR_SHOWN_CHARS = 100  # of a row's error in the table; the task keeps it whole (GET tasks/ID)


def _shortened(error: str) -> str:
    """An error's first line, cut to fit a table row (a traceback's last line can run to
    hundreds of characters, and every row of the text table is padded to the longest)."""
    first = error.strip().splitlines()[0] if error.strip() else ""
    return first if len(first) <= ERROR_SHOWN_CHARS else first[: ERROR_SHOWN_CHARS - 1] + "…"


def tasks_table(tasks: Sequence[dict[str, Any]]) -> Table:
    columns = ["id", "kind", "state", "devices", "MiB", "progress", "description", "error"]
    rows = [
        [
            t["id"],
            t["kind"],
            t["state"],
            devices_text(t["devices"]),
            memory_text(t),
            progress_text(t),
            t["description"],
            _shortened(t["error"] or ""),
        ]
        for t in tasks
    ]
    if any(t.get("waiting_for") for t in tasks):  # a newer server says why queued tasks wait
        columns.append("waiting for")
        for row, task in zip(rows, tasks, strict=True):
            row.append(task.get("waiting_for") or "")
    return Table(columns, rows)


def devices_table(devices: Sequence[dict[str, Any]]) -> Table:
    rows: list[tuple[Any, ...]] = [
        (
            d["id"], d["name"], "yes" if d["enabled"] else "no",
            f"{_used_mb(d):,} / {d['memory_reserved_mb']:,} / {d['memory_total_mb']:,}" if d["kind"] == "gpu" else "",
            ", ".join(map(str, d["task_ids"])),
            _by_other_users(d),
        )
        for d in devices
    ]  # fmt: skip
    headers = ["id", "name", "enabled", "MiB used / reserved / total", "tasks"]
    if any(row[-1] for row in rows):  # a box ledger shows other users' reservations
        headers.append("reserved by other users")
    rows = [row[: len(headers)] for row in rows]
    if any(d.get("node") for d in devices):  # a cluster: each card's machine, first
        headers.insert(0, "node")
        rows = [
            (d.get("node") or "this server", *row) for d, row in zip(devices, rows, strict=True)
        ]
    return Table(headers, rows)


def _used_mb(device: dict[str, Any]) -> int:
    """What the driver says is used, or what our tasks measurably use if that is more (pretend
    cards' driver says nothing; the GPUs tab shows the same figure)."""
    measured = device.get("memory_measured_mb")
    used: int = device["memory_used_mb"] or 0
    return max(used, measured) if isinstance(measured, int) else used


def _by_other_users(device: dict[str, Any]) -> str:
    mb = device.get("memory_reserved_by_others_mb") or 0
    return f"{mb} MiB ({', '.join(device.get('other_users') or [])})" if mb else ""


def checkpoints_table(reply: dict[str, Any]) -> Table:
    """A package's checkpoints, branch by branch, each branch saying where it forked."""
    epochs = {c["id"]: c.get("epoch") for c in reply["checkpoints"]}
    rows: list[list[Any]] = []
    for branch in reply.get("branches") or [{"id": 0, "parent": None, "head": reply["head"]}]:
        number = branch["id"]
        if branch.get("parent") is None:
            origin = "the first run"
        else:
            fork_epoch = branch.get("fork_epoch")
            origin = f"from checkpoint {branch['fork_checkpoint']}" + (
                f" (epoch {fork_epoch})" if fork_epoch is not None else ""
            )
        held = [c for c in reply["checkpoints"] if c.get("branch", 0) == number]
        for checkpoint in held or [None]:
            note = [origin] if checkpoint is None or checkpoint is held[0] else []
            if checkpoint is not None and checkpoint["id"] == reply["head"]:
                note.append("latest (continue and analyze use it by default)")
            rows.append(
                [
                    number,
                    "" if checkpoint is None else checkpoint["id"],
                    "" if checkpoint is None else epochs.get(checkpoint["id"], ""),
                    "; ".join(note) if note else "",
                ]
            )
    return Table(["branch", "checkpoint", "epoch", "note"], rows)


def devices_setting_text(devices: Sequence[int] | None, all_gpus: Sequence[int] = ()) -> str:
    """What a `changeDevices` left enabled, and what it disabled, said outright: leaving -1
    out of the list disables the CPU, and -CPU tasks are then refused. `all_gpus`: the
    machine's GPU ids, to name those left out."""
    if devices is None:
        return "every device is enabled"
    gpus = [d for d in devices if d != CPU_ID]
    said = _gpus(gpus) if gpus else "no GPU"
    off = [g for g in all_gpus if g not in gpus]
    if CPU_ID in devices:
        said = f"{said} and the CPU are enabled"
    else:
        said = f"{said} enabled; the CPU is disabled (-CPU tasks are refused; list -1 to keep it)"
    return said + (f"; {_gpus(off)} disabled" if off else "")


def _gpus(ids: Sequence[int]) -> str:
    return ("GPU " if len(ids) == 1 else "GPUs ") + ", ".join(map(str, ids))
