"""Sweep overhead: a 16-point grid through `%dlnest sweep` against the same 16 runs submitted
by hand with `%dlnest run`, in one run.

Two figures, as issue 23 asks:
- makespan: from the `%dlnest sweep` call to the last trial's end, against from the first of
  16 `%dlnest run -f` calls (one freq config per point, written as notebooks/dashboard.ipynb
  does) to the last run's end; goal: at most 1.05x. The same project (tests/projects.py's
  `scored_project`: a tiny model, a couple of epochs, its `score` the config's `quality`), the
  same 16 points (quality x batch_size, 4 x 4) and the same placement: two pretend 16 GiB cards
  (FakeSource), no `-CPU`, no `-m`, so each run trains on the CPU while it holds a pretend card.
  Each epoch sleeps `--epoch-s` (1 s), so a run lasts about 2 s: with the zygote a bare run
  of the tiny model ends in 0.1 s, well within the scheduler's 1 s pass, and the makespan then
  counts passes, where the 16 `%dlnest run` calls, each a pass of its own, notice the first
  runs' ends a pass before the sweep's passes can (`--epoch-s 0` shows it). Rounds alternate,
  hand then sweep, each on a fresh queue (no memory learned by an earlier round), and medians
  are compared;
- the scheduling thread's CPU for following trials: the same grid, its best points first, with
  `--prune median` (each epoch row of a running trial is reported to Optuna, and lagging trials
  are pruned) and `--cpu-epochs` (10) epochs of 0.2 s per trial; the CPU the sweep driver
  (`SweepDriver.drive`, each pass) spends, less what it spends making its trials' packages
  (`SweepDriver._submit`: the submission any `%dlnest run` pays too), per epoch row it read
  from the trials' `_metrics.jsonl`; goal: at most 5 ms per row. Optuna is imported before it,
  as the makespan rounds (a grid with no pruner runs without it) leave it unimported: a server
  imports it once, not per row.

The magics run as in a notebook with no Jupyter server: `%dlnest` over the in-process client
to an embedded service whose scheduler thread runs its passes (every second, and at once on a
submission), with the zygote executor the embedded service uses. The last line is one JSON
object, like `loop_overhead.py`'s: the makespan ratio as `ratio`, the CPU per row as
`driver_cpu_ms_per_row`, and `met` only when both goals are.

    .venv/bin/python benchmarks/sweep_overhead.py [--rounds N] [--epochs N] [--epoch-s S]
        [--cpu-epochs N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from dlnest_jupyter.client.client import Client, InProcessTransport
from dlnest_jupyter.client.magics import DLNestMagics
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.package import SavePackage
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.service.api.dispatcher import Api
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService
from dlnest_jupyter.service.sweeps.driver import SweepDriver

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.projects import scored_project

QUALITIES = (0.2, 0.4, 0.6, 0.8)
BATCH_SIZES = (8, 16, 32, 64)
CARDS = (16384, 16384)


def grid_flags(qualities: tuple[float, ...] = QUALITIES) -> str:
    return (
        f"--grid quality={','.join(map(str, qualities))} "
        f"--grid batch_size={','.join(map(str, BATCH_SIZES))}"
    )


@contextlib.contextmanager
def embedded(folder: Path) -> Iterator[tuple[DLNestService, DLNestMagics]]:
    """A fresh queue in `folder` with its service ticking on its thread, and `%dlnest` on it:
    what `discovery.embedded_client` makes, over pretend cards."""
    folder.mkdir(parents=True)
    executor = LocalExecutor(zygote=True)
    assert executor.zygote is not None and executor.zygote.wait_ready(120)
    service = DLNestService(TaskStore(folder / "dlnest.sqlite"), FakeSource(CARDS), executor)
    service.tick()
    service.start()
    client = Client(InProcessTransport(Api(service, Path.cwd(), [Path("/")])))
    shell = InteractiveShell.instance()
    try:
        yield service, DLNestMagics(shell, client_factory=lambda: client)
    finally:
        service.stop()
        InteractiveShell.clear_instance()


def magic(dlnest: DLNestMagics, line: str) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):  # its one line per call, as a cell shows
        return dlnest.dlnest(line)  # type: ignore[call-arg]  # IPython's decorator hides it


def last_end(service: DLNestService, task_ids: list[int], timeout_s: float = 600) -> float:
    """When the last of `task_ids` ended (as the store records it), once all have."""
    deadline = time.monotonic() + timeout_s
    while True:
        tasks = [service.store.get(i) for i in task_ids]
        if all(t.state.terminal for t in tasks):
            assert all(t.state.value == "succeeded" for t in tasks), [t.error for t in tasks]
            return max(t.ended_at or 0.0 for t in tasks)
        assert time.monotonic() < deadline, "the runs never ended"
        time.sleep(0.05)


def sweep_trials(service: DLNestService, sweep_id: int, timeout_s: float = 600) -> list[int]:
    """The task ids of a sweep's trials, once it has finished."""
    deadline = time.monotonic() + timeout_s
    while (sweep := service.sweeps.get(sweep_id))["state"] == "running":
        assert time.monotonic() < deadline, "the sweep never finished"
        time.sleep(0.05)
    assert sweep["state"] == "finished", sweep
    return [t["task_id"] for t in sweep["trials"]]


def by_hand(folder: Path, config: Path, freqs: list[Path]) -> float:
    """Seconds from the first `%dlnest run` to the last run's end."""
    with embedded(folder) as (service, dlnest):
        start = time.time()
        ids = [magic(dlnest, f"run -c {config} -f {freq} -d {freq.stem}").id for freq in freqs]
        return last_end(service, ids) - start


def by_sweep(folder: Path, config: Path) -> tuple[float, float]:
    """Seconds from the `%dlnest sweep` call to its last trial's end, and to the sweep's."""
    with embedded(folder) as (service, dlnest):
        start = time.time()
        sweep = magic(dlnest, f"sweep -c {config} {grid_flags()} --metric score")
        ids = sweep_trials(service, sweep["id"])
        finished = time.time()
        assert len(ids) == len(QUALITIES) * len(BATCH_SIZES)
        return last_end(service, ids) - start, finished - start


class DriverClock:
    """The CPU the sweep driver's passes take on whichever thread runs them, less its trials'
    submissions (wrapped on the service's own driver instance)."""

    def __init__(self, driver: SweepDriver) -> None:
        self.drive_s = self.submit_s = 0.0
        self.passes = 0
        driver.drive = self._timed(driver.drive, "drive_s")  # type: ignore[method-assign]
        driver._submit = self._timed(driver._submit, "submit_s")  # type: ignore[method-assign]

    def _timed(self, method: Callable[..., Any], total: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                setattr(self, total, getattr(self, total) + time.thread_time() - start)
                self.passes += total == "drive_s"

        return timed


def driver_cpu(folder: Path, config: Path) -> dict[str, Any]:
    """A pruning grid, its best points first (so later trials lag and are pruned): the driver's
    CPU less its submissions, the metric rows it read, and the epochs it reported to Optuna."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    with embedded(folder) as (service, dlnest):
        driver = service.loop.scheduler.sweeps
        assert driver is not None
        clock = DriverClock(driver)
        flags = grid_flags(tuple(reversed(QUALITIES)))
        sweep = magic(dlnest, f"sweep -c {config} {flags} --metric score --prune median")
        deadline = time.monotonic() + 600
        while (done := service.sweeps.get(sweep["id"]))["state"] == "running":
            assert time.monotonic() < deadline, "the sweep never finished"
            time.sleep(0.05)
    assert done["state"] == "finished", done
    rows = 0
    for trial in done["trials"]:
        package = service.store.get(trial["task_id"]).package_path
        rows += len(SavePackage(Path(package or "")).read_metrics())
    storage = JournalStorage(JournalFileBackend(done["journal"]))
    [study] = optuna.get_all_study_summaries(storage)
    reported = optuna.load_study(study_name=study.study_name, storage=storage).get_trials()
    following_s = clock.drive_s - clock.submit_s
    return {
        "rows": rows,
        "reports": sum(len(t.intermediate_values) for t in reported),
        "passes": clock.passes,
        "pruned": sum(t["state"] == "pruned" for t in done["trials"]),
        "following_ms": following_s * 1e3,
        "submitting_ms": clock.submit_s * 1e3,
        "ms_per_row": following_s * 1e3 / rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=2, help="hand and sweep rounds each, alternating"
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run, makespan rounds")
    parser.add_argument(
        "--epoch-s", type=float, default=1.0, help="seconds each epoch sleeps, makespan rounds"
    )
    parser.add_argument(
        "--cpu-epochs", type=int, default=10, help="epochs per trial, the CPU-per-row sweep"
    )
    parser.add_argument(
        "--dir", help="where the project and the queue live (default: the temp dir)"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=options.dir) as temp:
        root = Path(temp)
        config = scored_project(root / "proj", epochs=options.epochs, epoch_sleep_s=options.epoch_s)
        (root / "freq").mkdir()
        freqs = []
        for quality, batch in itertools.product(QUALITIES, BATCH_SIZES):
            freq = root / "freq" / f"q{quality}_b{batch}.json"
            freq.write_text(json.dumps({"quality": quality, "batch_size": batch}))
            freqs.append(freq)
        hand_s, sweep_s, finished_s = [], [], []
        for index in range(options.rounds):  # alternating: the machine's drift hits both alike
            hand_s.append(by_hand(root / f"hand{index}", config, freqs))
            ended, finished = by_sweep(root / f"sweep{index}", config)
            sweep_s.append(ended)
            finished_s.append(finished)
            print(
                f"round {index}: by hand {hand_s[-1]:.2f} s, sweep {ended:.2f} s"
                f" (the sweep finished at {finished:.2f} s)"
            )
        # Epochs long enough that the driver sees trials running, and reports their rows.
        slow = scored_project(root / "slow", epochs=options.cpu_epochs, epoch_sleep_s=0.2)
        cpu = driver_cpu(root / "cpu", slow)
    print(
        f"sweep driver: {cpu['following_ms']:.1f} ms of CPU over {cpu['passes']} passes for"
        f" {cpu['rows']} metric rows ({cpu['reports']} reported to Optuna, {cpu['pruned']} trials"
        f" pruned): {cpu['ms_per_row']:.3f} ms per row; making its trials' packages:"
        f" {cpu['submitting_ms']:.1f} ms more"
    )
    value, baseline = statistics.median(sweep_s), statistics.median(hand_s)
    ratio = value / baseline
    print(
        json.dumps(
            {
                "metric": "sweep_makespan_ratio_vs_hand_runs",
                "value": round(value, 3),
                "baseline": round(baseline, 3),
                "ratio": round(ratio, 4),
                "goal": "ratio <= 1.05, and the driver's CPU <= 5 ms per epoch row",
                "met": ratio <= 1.05 and cpu["ms_per_row"] <= 5,
                "unit": "seconds from the first call to the last run's end (medians)",
                "driver_cpu_ms_per_row": round(cpu["ms_per_row"], 4),
                "driver_rows": cpu["rows"],
                "driver_reports_to_optuna": cpu["reports"],
                "driver_passes": cpu["passes"],
                "driver_cpu_ms": round(cpu["following_ms"], 1),
                "driver_submit_cpu_ms": round(cpu["submitting_ms"], 1),
                "pruned_trials": cpu["pruned"],
                "sweep_finished_s": round(statistics.median(finished_s), 3),
                "hand_s": [round(s, 3) for s in hand_s],
                "sweep_s": [round(s, 3) for s in sweep_s],
                "runs": len(freqs),
                "epochs": options.epochs,
                "epoch_s": options.epoch_s,
                "cpu_sweep_epochs": options.cpu_epochs,
                "cards": len(CARDS),
                "dir": options.dir or tempfile.gettempdir(),
            }
        )
    )


if __name__ == "__main__":
    main()
