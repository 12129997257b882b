"""Live metric curves from the runs' `_metrics.jsonl`: several runs overlaid, any numeric key.

bqplot draws them when it is installed (an ipywidgets-native chart: new rows update the marks'
arrays in place); without it the same curves are an SVG inside an HTML widget, which needs no
frontend extension, and the panel says so once. The legend is the table beside the chart (a
legend inside a chart covers curves and cuts names). Smoothing draws the raw curve faintly
under the smoothed one, so it never hides what was measured.

Only training runs are offered (an analyzer writes no metrics); the run chosen in the queue
becomes the one shown. "By step" draws the values each step logged (`_steps.jsonl`), for the
first run chosen only: one run's steps are already thousands of points.
"""

from __future__ import annotations

import base64
import contextlib
import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import traitlets

from ..core.tasks import runs_in_kernel
from . import metrics_view as mv
from . import view_model as vm
from .panels import Submit
from .widgets_util import set_options, set_value

MAX_RUNS = 8
RAW_OPACITY = 0.3  # the measured curve under a smoothed one
MAX_DOWNLOAD_BYTES = 2 * 1024 * 1024  # a data: link larger than this is slow to build


@dataclass(frozen=True)
class Curve:
    """One curve as the chart holds it: what a reader of the chart sees."""

    label: str
    xs: list[float]
    ys: list[float]
    opacity: float
    in_chart_legend: bool  # a legend drawn over the curves (the table beside it is the legend)


class MetricsPanel:
    def __init__(self, submit: Submit | None = None, folder: Path | None = None) -> None:
        """`folder`: where Export CSV writes (default: the kernel's working folder, which is
        the notebook's)."""
        self.runs = widgets.SelectMultiple(
            description="runs", rows=6, layout=widgets.Layout(width="440px")
        )
        self.key = widgets.Dropdown(description="metric", layout=widgets.Layout(width="260px"))
        self.x_axis = widgets.ToggleButtons(
            options=[("by epoch", "epoch"), ("by step", "step"), ("by time", "time")],
            value="epoch", style={"button_width": "80px"},
        )  # fmt: skip
        self.smoothing = widgets.FloatSlider(
            value=0.0, min=0.0, max=0.95, step=0.05, description="smoothing",
            layout=widgets.Layout(width="260px"),
        )  # fmt: skip
        self.log_scale = widgets.Checkbox(value=False, description="log scale (log10)")
        self.export = widgets.Button(description="Export CSV", icon="download")
        self.exported = widgets.HTML()
        self.summary = widgets.HTML(layout=widgets.Layout(flex="1 1 auto"))
        self.note = widgets.HTML()
        self.about = widgets.HTML()  # what a point is: an epoch's mean, or an older last value
        self.rows: dict[int, list[dict[str, Any]]] = {}  # task id -> its rows so far
        self.labels: dict[int, str] = {}  # run (a package's first task) -> its curves' name
        self._run_of: dict[int, int] = {}  # any training task -> the run of its package
        self.offsets: dict[int, int] = {}  # task id -> next byte of its _metrics.jsonl
        self.step_rows: dict[int, list[dict[str, Any]]] = {}  # task id -> its _steps.jsonl rows
        self.step_offsets: dict[int, int] = {}
        self.branches: dict[int, tuple[int, list[dict[str, Any]]]] = {}  # task -> (count, forks)
        # A metric asked for before its runs' rows offer it (a sweep's), and for which runs.
        self._wanted_key: tuple[str, tuple[int, ...]] | None = None
        self.folder = folder
        self._chart, self._figure, self._scales = self._make_chart()
        self._drawn: tuple[Any, ...] | None = None
        self._svg_curves: list[Curve] = []  # what the SVG chart drew, without bqplot
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.runs, widgets.VBox([self.key, self.x_axis, self.smoothing])]),
                widgets.HBox([self.log_scale, self.export, self.exported]),
                widgets.HBox([self._chart, self.summary]),
                self.about,
                self.note,
            ]
        )
        if submit is not None:
            self.export.on_click(lambda _: submit(self.export_csv))

    def _make_chart(self) -> tuple[widgets.Widget, Any, Any]:
        try:
            import bqplot
        except ImportError:
            self.note.value = (
                "<i>bqplot is not installed: curves are drawn as SVG "
                "(pip install bqplot for zoomable live charts)</i>"
            )
            return widgets.HTML(), None, None
        scales = {"x": bqplot.LinearScale(), "y": bqplot.LinearScale()}
        figure = bqplot.Figure(
            marks=[],
            axes=[
                bqplot.Axis(scale=scales["x"], label="epoch"),
                bqplot.Axis(scale=scales["y"], side="left"),
            ],
            layout=widgets.Layout(width="560px", height="320px"),
            fig_margin={"top": 20, "bottom": 40, "left": 60, "right": 20},
        )
        return figure, figure, scales

    @property
    def selected(self) -> tuple[int, ...]:
        return tuple(v for v in self.runs.value if isinstance(v, int))

    def shown_runs(self) -> tuple[int, ...]:
        return self.selected[:MAX_RUNS]

    def update_runs(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        """Offer the training runs, one per package: a package's metric rows are those of its
        first run and every continue of it (each branch its own line), so offering each task
        drew the same curves once per task. An analyzer's package holds its training's rows,
        which that run already shows."""
        trained = [t for t in tasks if t.get("package_path") and not runs_in_kernel(t["kind"])]
        by_package: dict[str, list[Mapping[str, Any]]] = {}
        for task in sorted(trained, key=lambda t: t["id"]):
            by_package.setdefault(str(task["package_path"]), []).append(task)
        runs = sorted(by_package.values(), key=lambda same: -same[-1]["id"])[:50]  # newest first
        self._run_of = {t["id"]: same[0]["id"] for same in runs for t in same}
        self.labels = {same[0]["id"]: _run_label(same) for same in runs}
        options = [(vm.short(_run_label(same), 60), same[0]["id"]) for same in runs]
        set_options(self.runs, options)
        if not self.runs.value and runs:  # something to look at from the start
            self.runs.value = (runs[0][0]["id"],)

    def follow(self, task_id: int | None) -> None:
        """Show the run chosen in the queue (others the user added go: one run, its curves);
        a continue shows its package, under its first run's name."""
        run = self._run_of.get(task_id) if task_id is not None else None
        if run is None:
            return
        with contextlib.suppress(traitlets.TraitError):  # not offered: keep the choice
            self.runs.value = (run,)

    def show(self, task_ids: Sequence[int], key: str | None = None) -> list[int]:
        """Overlay these tasks' runs (a sweep's trials), `key` chosen once their rows offer it;
        returns the tasks not offered (not training runs, or older than the runs listed)."""
        runs = [self._run_of[t] for t in task_ids if t in self._run_of]
        chosen = tuple(dict.fromkeys(runs))[:MAX_RUNS]
        if chosen:
            self.runs.value = chosen
        self._wanted_key = (key, chosen) if key and chosen else None
        return [t for t in task_ids if t not in self._run_of]

    def add_rows(self, task_id: int, reply: Mapping[str, Any]) -> bool:
        """Fold a `metrics` reply in; True when it brought rows."""
        self.offsets[task_id] = reply["offset"]
        self.rows.setdefault(task_id, []).extend(reply["rows"])
        if reply.get("skipped"):
            set_value(self.note, f"<i>skipped: {vm.output_html(reply['skipped'][-1])}</i>")
        return bool(reply["rows"])

    @property
    def by_step(self) -> bool:
        return bool(self.x_axis.value == "step")

    def step_run(self) -> int | None:
        """The run drawn step by step: the first one chosen."""
        shown = self.shown_runs()
        return shown[0] if shown and self.by_step else None

    def add_step_rows(self, task_id: int, reply: Mapping[str, Any]) -> bool:
        """Fold a `steps` reply in; True when it brought rows."""
        self.step_offsets[task_id] = reply["offset"]
        self.step_rows.setdefault(task_id, []).extend(reply["rows"])
        return bool(reply["rows"])

    def needs_branches(self, task_id: int) -> bool:
        """True when the run's rows show a branch not yet placed (where did it fork?)."""
        count = mv.branch_count(self.rows.get(task_id, []))
        return count > 1 and self.branches.get(task_id, (0, []))[0] != count

    def set_branches(self, task_id: int, branches: Sequence[Mapping[str, Any]] | None) -> None:
        count = mv.branch_count(self.rows.get(task_id, []))
        self.branches[task_id] = (count, [dict(b) for b in branches or []])

    def lines(self) -> list[mv.Line]:
        key, x_axis = str(self.key.value or ""), str(self.x_axis.value)
        if not key:
            return []
        step_run = self.step_run()
        if step_run is not None:
            return mv.step_lines(
                step_run,
                self.labels.get(step_run, f"task {step_run}"),
                self.step_rows.get(step_run, []),
                key,
                self.branches.get(step_run, (0, []))[1],
            )
        return [
            line
            for task_id in self.shown_runs()
            for line in mv.lines(
                task_id,
                self.labels.get(task_id, f"task {task_id}"),
                self.rows.get(task_id, []),
                key,
                x_axis,
                self.branches.get(task_id, (0, []))[1],
            )
        ]

    def draw(self) -> None:
        """Redraw when anything shown changed; else nothing goes out."""
        selected = self.shown_runs()
        shown_rows = [row for task_id in selected for row in self.rows.get(task_id, [])]
        set_options(self.key, mv.numeric_keys(shown_rows))
        self._choose_wanted_key()
        key = str(self.key.value or "")
        step_run = self.step_run()
        steps_seen = len(self.step_rows.get(step_run, [])) if step_run is not None else -1
        state = (
            selected, key, tuple(len(self.rows.get(t, [])) for t in selected), steps_seen,
            self.x_axis.value, self.smoothing.value, self.log_scale.value,
            tuple(self.branches.get(t, (0,))[0] for t in selected),
        )  # fmt: skip
        if self._drawn == state:
            return
        self._drawn = state
        drawn = self.lines()
        set_value(self.summary, mv.summary_html(drawn, key) if key else "")
        if step_run is not None:
            about = f"each point: a value run {step_run} logged at a step (long epochs thinned)"
            if len(selected) > 1:
                about += "; by step shows the first run chosen only"
            set_value(self.about, f"<i>{html.escape(about)}</i>")
        else:
            set_value(self.about, f"<i>{mv.values_note(shown_rows)}</i>" if shown_rows else "")
        if self._figure is None:
            shown = [self._shown(line) for line in drawn]
            self._svg_curves = [Curve(s.label, s.xs, s.ys, 1.0, False) for s in shown]
            set_value(self._chart, mv.svg_chart(shown))
            return
        self._draw_bqplot(drawn, key)

    def _choose_wanted_key(self) -> None:
        """The metric `show` asked for, once offered; forgotten when other runs are chosen."""
        if self._wanted_key is None:
            return
        key, runs = self._wanted_key
        if self.selected != runs:
            self._wanted_key = None
        elif key in self.key.options:
            self.key.value = key
            self._wanted_key = None

    def _shown(self, line: mv.Line) -> mv.Line:
        ys = mv.smoothed(line.ys, float(self.smoothing.value))
        ys = mv.log_values(ys) if self.log_scale.value else ys
        return mv.Line(line.task_id, line.branch, line.label, line.xs, ys)

    def _draw_bqplot(self, drawn: Sequence[mv.Line], key: str) -> None:
        import bqplot

        marks = list(self._figure.marks)
        while len(marks) < len(drawn):  # one Lines mark per line, made once and then refilled
            marks.append(bqplot.Lines(scales=self._scales, marker="circle"))
        smoothing = float(self.smoothing.value)
        with self._figure.hold_sync():
            for index, (mark, line) in enumerate(zip(marks, drawn, strict=False)):
                colour = mv.PALETTE[index % len(mv.PALETTE)]
                raw = mv.log_values(line.ys) if self.log_scale.value else line.ys
                with mark.hold_sync():
                    mark.x = line.xs
                    if smoothing > 0:  # the raw curve stays, faint, under the smoothed one
                        mark.y = [raw, self._shown(line).ys]
                        mark.colors, mark.opacities = [colour, colour], [RAW_OPACITY, 1.0]
                    else:
                        mark.y = raw
                        mark.colors, mark.opacities = [colour], [1.0]
                    mark.labels = (
                        [f"{line.label} (raw)", line.label] if smoothing > 0 else [line.label]
                    )
            self._figure.marks = marks[: len(drawn)]
            x_axis, y_axis = self._figure.axes
            x_axis.label = mv.X_AXES[str(self.x_axis.value)]
            # Epochs are whole: bqplot's own ticks put 1.1, 1.2, ... between two of them.
            epochs = [x for line in drawn for x in line.xs] if self.x_axis.value == "epoch" else []
            x_axis.tick_values = vm.whole_ticks(epochs) if epochs else None
            y_axis.label = f"log10 of {key}" if self.log_scale.value else key

    def drawn_curves(self) -> list[Curve]:
        """The curves the chart holds now, as drawn (smoothed, log10), in drawing order: a
        smoothed line is two curves, its raw one first."""
        if self._figure is None:
            return list(self._svg_curves)
        curves = []
        for mark in self._figure.marks:
            xs = [float(x) for x in mark.x]
            series = [mark.y] if len(mark.opacities) == 1 else list(mark.y)
            for label, ys, opacity in zip(mark.labels, series, mark.opacities, strict=True):
                curve = Curve(label, xs, [float(y) for y in ys], opacity, bool(mark.display_legend))
                curves.append(curve)
        return curves

    def x_ticks(self) -> list[float] | None:
        """Where the x axis has its ticks; None: where bqplot chooses (or no bqplot)."""
        if self._figure is None or self._figure.axes[0].tick_values is None:
            return None
        return [float(x) for x in self._figure.axes[0].tick_values]

    def axis_labels(self) -> tuple[str, str]:
        """(x, y): what the chart's axes say (the SVG chart names none)."""
        if self._figure is None:
            return "", ""
        x_axis, y_axis = self._figure.axes
        return str(x_axis.label), str(y_axis.label)

    def export_csv(self) -> str:
        """Write the shown runs' rows to a CSV file and say where (the action of Export CSV)."""
        selected = self.shown_runs()
        if not selected:
            return "choose a run first"
        folder = self.folder or Path.cwd()
        name = f"dlnest-metrics-{'-'.join(map(str, selected))}-{time.strftime('%Y%m%d-%H%M%S')}"
        path = folder / f"{name}.csv"
        rows = {t: self.rows.get(t, []) for t in selected}
        text = mv.rows_csv(rows)
        path.write_text(text, encoding="utf-8")
        count = sum(map(len, rows.values()))
        link = ""
        if len(text) <= MAX_DOWNLOAD_BYTES:  # the browser saves it too, where it saves files
            data = base64.b64encode(text.encode()).decode()
            link = f" <a download='{name}.csv' href='data:text/csv;base64,{data}'>download</a>"
        set_value(
            self.exported,
            f"<span style='font-size:12px'>{html.escape(str(path))}{link}</span>",
        )
        return f"wrote {count} rows of runs {', '.join(map(str, selected))} to {path}"


def _run_label(same_package: Sequence[Mapping[str, Any]]) -> str:
    """A package's curves' name: its first task and description, and the continues of it."""
    first, later = same_package[0], [t["id"] for t in same_package[1:]]
    label = f"task {first['id']} {first.get('description') or ''}".strip()
    return label + (f" (continued by {', '.join(map(str, later))})" if later else "")
