"""Live metric curves from the runs' `_metrics.jsonl`: several runs overlaid, any numeric key.

bqplot draws them when it is installed (an ipywidgets-native chart: new rows update the marks'
arrays in place); without it the same curves are an SVG inside an HTML widget, which needs no
frontend extension, and the panel says so once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from . import view_model as vm
from .widgets_util import set_options, set_value

MAX_RUNS = 8


class MetricsPanel:
    def __init__(self) -> None:
        self.runs = widgets.SelectMultiple(
            description="runs", rows=6, layout=widgets.Layout(width="320px")
        )
        self.key = widgets.Dropdown(description="metric", layout=widgets.Layout(width="260px"))
        self.summary = widgets.HTML()
        self.note = widgets.HTML()
        self.rows: dict[int, list[dict[str, Any]]] = {}  # task id -> its rows so far
        self.labels: dict[int, str] = {}  # task id -> what its curve is called
        self.offsets: dict[int, int] = {}  # task id -> next byte of its _metrics.jsonl
        self._chart, self._figure, self._scales = self._make_chart()
        self._drawn: tuple[tuple[int, ...], str, tuple[int, ...]] | None = None
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.runs, widgets.VBox([self.key, self.summary])]),
                self._chart,
                self.note,
            ]
        )

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
            legend_location="top-right",
            layout=widgets.Layout(width="640px", height="320px"),
            fig_margin={"top": 20, "bottom": 40, "left": 60, "right": 20},
        )
        return figure, figure, scales

    @property
    def selected(self) -> tuple[int, ...]:
        return tuple(v for v in self.runs.value if isinstance(v, int))

    def update_runs(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        runs = [t for t in tasks if t.get("package_path")][:50]
        self.labels = {
            t["id"]: f"task {t['id']} {(t.get('description') or '')[:24]}".strip() for t in runs
        }
        options = [
            (f"{t['id']} {t['kind']} {(t.get('description') or '')[:30]}", t["id"]) for t in runs
        ]
        set_options(self.runs, options)
        if not self.runs.value and runs:  # something to look at from the start
            self.runs.value = (runs[0]["id"],)

    def add_rows(self, task_id: int, reply: Mapping[str, Any]) -> bool:
        """Fold a `metrics` reply in; True when it brought rows."""
        self.offsets[task_id] = reply["offset"]
        self.rows.setdefault(task_id, []).extend(reply["rows"])
        if reply.get("skipped"):
            set_value(self.note, f"<i>skipped: {vm.output_html(reply['skipped'][-1])}</i>")
        return bool(reply["rows"])

    def draw(self) -> None:
        """Redraw when the runs, the key or the row counts changed; else nothing goes out."""
        selected = self.selected[:MAX_RUNS]
        keys = vm.numeric_keys(row for task_id in selected for row in self.rows.get(task_id, []))
        set_options(self.key, keys)
        key = str(self.key.value or "")
        counts = tuple(len(self.rows.get(t, [])) for t in selected)
        if self._drawn == (selected, key, counts):
            return
        self._drawn = (selected, key, counts)
        curves = {t: vm.series(self.rows.get(t, []), key) for t in selected} if key else {}
        set_value(self.summary, vm.summary_html(curves, key, self.labels) if key else "")
        if self._figure is None:
            set_value(self._chart, vm.svg_chart(curves))
            return
        self._draw_bqplot(curves)

    def _draw_bqplot(self, curves: Mapping[int, tuple[list[float], list[float]]]) -> None:
        import bqplot

        marks = list(self._figure.marks)
        while len(marks) < len(curves):  # one Lines mark per run, made once and then refilled
            marks.append(bqplot.Lines(scales=self._scales, display_legend=True, marker="circle"))
        with self._figure.hold_sync():
            for index, (mark, (task_id, (xs, ys))) in enumerate(
                zip(marks, curves.items(), strict=False)
            ):
                with mark.hold_sync():
                    mark.x, mark.y = xs, ys
                    mark.labels = [self.labels.get(task_id, f"task {task_id}")]
                    mark.colors = [vm.PALETTE[index % len(vm.PALETTE)]]
            self._figure.marks = marks[: len(curves)]
