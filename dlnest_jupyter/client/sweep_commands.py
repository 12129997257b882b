"""The sweep commands of `%dlnest`: sweep, sweeps and `del sweep`.

The `--grid` and `--search` flags are read into the REST body's `grid` and `search` by the same
rules the server checks them with (`core/sweep_space.py`), so a malformed flag is refused here
with the words the server would use.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import DLNestError
from ..core.sweep_space import space_from_flags
from .arguments import absolute_path, parse
from .client import Client
from .sweep_views import SweepRef, sweep_sentence, sweeps_table, trials_table
from .views import show


class SweepCommands:
    """Mixed into DLNestMagics, which provides the client."""

    @property
    def client(self) -> Client:
        raise NotImplementedError

    def _sweep(self, argv: list[str]) -> SweepRef:
        options = parse("sweep", argv)
        space = space_from_flags(options.grid, options.search).to_json()
        body: dict[str, Any] = {
            "config_path": absolute_path(options.c),
            **space,
            "objective": options.objective,
            "prune": options.prune,
            "cpu": options.CPU,
        }
        optional = {
            "freq_path": absolute_path(options.f) if options.f else None,
            "description": options.d,
            "memory_mb": options.m,
            "trials": options.trials,
            "parallel": options.parallel,
            "metric": options.metric,
            "direction": options.direction,
            "seed": options.seed,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        sweep, warnings = self.client.submit_sweep(body)
        for warning in warnings:
            print(f"dlnest: warning: {warning}")
        print(f"dlnest: {sweep_sentence(sweep)}")
        if sweep.get("journal"):
            print(f"dlnest: its Optuna study: optuna-dashboard {sweep['journal']}")
        return SweepRef(sweep)

    def _sweeps(self, argv: list[str]) -> SweepRef | None:
        sweep_id = parse("sweeps", argv).id
        if sweep_id is None:
            show(sweeps_table(self.client.sweeps()))
            return None
        sweep = self.client.sweep(sweep_id)
        print(f"dlnest: {sweep_sentence(sweep)}")
        show(trials_table(sweep))
        return None

    def _del_sweep(self, words: list[str]) -> SweepRef:
        if len(words) != 1 or not words[0].isdecimal():
            raise DLNestError("del sweep takes a sweep's id, e.g. %dlnest del sweep 2")
        sweep = self.client.stop_sweep(int(words[0]))
        print(f"dlnest: {sweep_sentence(sweep)}")
        return SweepRef(sweep)
