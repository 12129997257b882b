"""What the sweep commands show: the sweeps as a table, one sweep's trials best first, and the
value a `sweep = %dlnest sweep ...` cell gets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.sweeps import (
    DEFAULT_PRUNE,
    SweepState,
    TrialState,
    TrialView,
    best_first,
    param_text,
    params_text,
    trials_active,
    value_text,
)
from .views import Table


class SweepRef(dict[str, Any]):
    """A sweep as the server replied (its REST SWEEP); `.id` is its id."""

    @property
    def id(self) -> int:
        return int(self["id"])

    def __repr__(self) -> str:
        return f"<dlnest sweep {self['id']}: {self['state']}, {_done(self)}>"


def sweep_sentence(sweep: Mapping[str, Any]) -> str:
    """One line: what it varies, how many trials, how they are judged, and how far it is."""
    keys = [*sweep["grid"], *sweep["search"]]
    how = "search" if sweep["search"] else "grid"
    judged = (
        f"judged by {sweep['metric']} ({sweep['direction']}, {sweep['objective']} epoch"
        + (f", {sweep['prune']} pruning" if sweep["prune"] != DEFAULT_PRUNE else "")
        + ")"
        if sweep["metric"]
        else "not judged (no --metric)"
    )
    line = (
        f"sweep {sweep['id']} {sweep['state']}: a {how} over {', '.join(keys)}, "
        f"{_done(sweep)}, {judged}"
    )
    best = sweep.get("best")
    if best:
        so_far = " so far" if sweep["state"] == SweepState.RUNNING else ""
        line += (
            f"; best{so_far}: trial {best['number']} (task {best['task_id']}), "
            f"{value_text(best['value'])}"
        )
    if sweep.get("note"):
        line += f"; {sweep['note']}"
    return line


def sweeps_table(sweeps: Sequence[Mapping[str, Any]]) -> Table:
    rows = []
    for sweep in sweeps:
        best = sweep.get("best") or {}
        rows.append(
            [
                sweep["id"],
                sweep["state"],
                sweep.get("description") or "",
                _done(sweep),
                sweep.get("metric") or "",
                value_text(best.get("value")),
                params_text(best.get("params") or {}),
                sweep.get("note") or "",
            ]
        )
    return Table(
        ["id", "state", "description", "trials", "metric", "best", "best values", "note"], rows
    )


def trials_table(sweep: Mapping[str, Any]) -> Table:
    """The sweep's trials best first, a column per varied key; the best is marked."""
    keys = [*sweep["grid"], *sweep["search"]]
    trials = [
        TrialView(t["number"], t["task_id"], t["params"], TrialState(t["state"]), t["value"])
        for t in sweep["trials"]
    ]
    best = (sweep.get("best") or {}).get("number")
    rows = [
        [
            f"{t.number} (best)" if t.number == best else t.number,
            t.task_id,
            t.state.value,
            value_text(t.value),
            *(param_text(t.params.get(key)) for key in keys),
        ]
        for t in best_first(trials, sweep["direction"])
    ]
    return Table(["trial", "task", "state", sweep.get("metric") or "value", *keys], rows)


def _done(sweep: Mapping[str, Any]) -> str:
    ended = len(sweep["trials"]) - trials_active(sweep["trials"])
    return f"{ended} of {sweep['trials_total']} trials done"
