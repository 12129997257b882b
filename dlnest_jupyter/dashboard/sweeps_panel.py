"""The Sweeps tab: the sweeps, and for the one chosen its trials, their objectives on two charts,
a button that overlays the trials' curves in the Metrics tab, and Stop.

The charts are bqplot scatters made once with the panel (on the main thread) and refilled;
without bqplot they are SVG inside HTML widgets, and the panel says so once, as the Metrics tab
does. A point's colour is its trial's state; the best trial's point is ringed by a second mark.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from ..core.sweeps import SweepState, trials_active
from . import sweeps_view as sv
from .metrics_panel import MAX_RUNS
from .panels import Submit
from .view_model import whole_ticks
from .widgets_util import NewestUntilPicked, set_options, set_stoppable, set_value

# Shows task ids' curves of a metric in the Metrics tab; returns what to tell the user.
ShowCurves = Callable[[Sequence[int], str | None], str]
CHART_LAYOUT = {"width": "380px", "height": "260px"}


class SweepsPanel:
    def __init__(self, submit: Submit, client: Any, show_curves: ShowCurves) -> None:
        self.sweep = widgets.Dropdown(description="sweep", layout=widgets.Layout(width="360px"))
        self.stop = widgets.Button(description="Stop sweep", button_style="danger", icon="stop")
        self.overlay = widgets.Button(
            description="Curves in Metrics", icon="line-chart",
            tooltip=f"overlay the trials' metric curves in the Metrics tab (the best {MAX_RUNS})",
            layout=widgets.Layout(width="170px"),
        )  # fmt: skip
        self.against = widgets.Dropdown(description="against", layout=widgets.Layout(width="260px"))
        self.summary = widgets.HTML()
        self.table = widgets.HTML()
        self.note = widgets.HTML()
        self.by_number, self._number_marks = self._make_chart()
        self.by_key, self._key_marks = self._make_chart()
        # Hidden until there is a sweep: two empty 0-1 charts said nothing.
        self.charts = widgets.VBox(
            [self.against, widgets.HBox([self.by_number, self.by_key])],
            layout=widgets.Layout(display="none"),
        )
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.sweep, self.stop, self.overlay]),
                self.summary,
                self.table,
                self.charts,
                self.note,
            ]
        )
        self.sweeps: dict[int, dict[str, Any]] = {}  # id -> the SWEEP last read
        self._client, self._show_curves = client, show_curves
        self._confirming: int | None = None  # the sweep a first Stop press asked about
        self._drawn: str | None = None  # what the charts and table show, to skip a redraw
        self.stop.on_click(lambda _: submit(self._stop))
        self.overlay.on_click(lambda _: submit(self._overlay))
        # Another sweep or key chosen shows at once, drawn by the refresher (the only writer).
        self._picker = NewestUntilPicked(self.sweep)  # a sweep just started is in view
        self.sweep.observe(lambda _: submit(self._redraw), names="value")
        self.against.observe(lambda _: submit(self._redraw), names="value")

    def _make_chart(self) -> tuple[widgets.Widget, tuple[Any, Any] | None]:
        """A scatter of objectives (and a ring mark for the best), or an HTML widget for SVG."""
        try:
            import bqplot
        except ImportError:
            self.note.value = (
                "<i>bqplot is not installed: the charts are drawn as SVG "
                "(pip install bqplot for zoomable charts)</i>"
            )
            return widgets.HTML(), None
        scales = {"x": bqplot.LinearScale(), "y": bqplot.LinearScale()}
        tooltip = bqplot.Tooltip(fields=["name", "y"], labels=["", "objective"])
        points = bqplot.Scatter(
            scales=scales, default_size=48, tooltip=tooltip, display_names=False
        )
        best = bqplot.Scatter(
            scales=scales, marker="circle", default_size=200, fill=False,
            stroke="black", stroke_width=2.5, colors=["black"], display_names=False,
        )  # fmt: skip
        figure = bqplot.Figure(
            marks=[points, best],
            axes=[bqplot.Axis(scale=scales["x"]), bqplot.Axis(scale=scales["y"], side="left")],
            layout=widgets.Layout(**CHART_LAYOUT),
            fig_margin={"top": 20, "bottom": 40, "left": 60, "right": 20},
        )
        return figure, (points, best)

    @property
    def sweep_id(self) -> int | None:
        value = self.sweep.value
        return value if isinstance(value, int) else None

    @property
    def chosen(self) -> dict[str, Any] | None:
        return self.sweeps.get(self.sweep_id) if self.sweep_id is not None else None

    def update(self, sweeps: Sequence[Mapping[str, Any]]) -> None:
        """The sweeps as `GET sweeps` gave them; the chosen one shown (the newest at first)."""
        self.sweeps = {int(s["id"]): dict(s) for s in sweeps}
        self._picker.set_options(sv.sweep_options(sweeps))
        if self._confirming is not None and self._confirming != self.sweep_id:
            self._confirm(None)  # another sweep chosen: a Stop press starts over
        sweep = self.chosen
        set_stoppable(self.stop, sweep is not None and sweep["state"] == SweepState.RUNNING)
        self.overlay.disabled = sweep is None or not sweep["trials"]
        self._redraw()

    def _redraw(self) -> str | None:
        sweep = self.chosen
        set_options(self.against, sv.searched_keys(sweep) if sweep else [])
        drawn = json.dumps([sweep, self.against.value], sort_keys=True, default=str)
        if drawn == self._drawn:
            return None
        self._drawn = drawn
        shown = "none" if sweep is None else ""
        if self.charts.layout.display != shown:
            self.charts.layout.display = shown
        if sweep is None:
            set_value(self.summary, "<i>no sweeps yet: %dlnest sweep starts one</i>")
            set_value(self.table, "")
        else:
            set_value(self.summary, sv.sweep_summary_html(sweep))
            set_value(self.table, sv.trials_table_html(sweep))
        key = self.against.value if isinstance(self.against.value, str) else None
        empty: dict[str, Any] = {"trials": []}
        self._draw(self.by_number, self._number_marks, sv.objective_points(sweep or empty), sweep)
        by_key = (
            sv.objective_points(sweep or empty, key) if key else sv.Points("", [], [], [], [], None)
        )
        self._draw(self.by_key, self._key_marks, by_key, sweep)
        return None

    def _draw(
        self,
        chart: widgets.Widget,
        marks: tuple[Any, Any] | None,
        points: sv.Points,
        sweep: Mapping[str, Any] | None,
    ) -> None:
        if marks is None:
            set_value(chart, sv.svg_scatter(points))
            return
        mark, best = marks
        picked = [points.best] if points.best is not None else []
        with chart.hold_sync():
            with mark.hold_sync():
                mark.x, mark.y = points.xs, points.ys
                mark.colors, mark.names = points.colours or ["#6c757d"], points.labels
            with best.hold_sync():
                best.x = [points.xs[i] for i in picked]
                best.y = [points.ys[i] for i in picked]
            x_axis, y_axis = chart.axes
            x_axis.label = points.x_label
            # At most 6 on these narrow charts: ten 3-digit labels ran together.
            x_axis.tick_values = whole_ticks(points.xs, most=6) if points.whole_x else None
            y_axis.label = str((sweep or {}).get("metric") or "objective")
            for scale, values in ((mark.scales["x"], points.xs), (mark.scales["y"], points.ys)):
                scale.min, scale.max = sv.padded_range(values) or (None, None)

    def points_drawn(self, chart: widgets.Widget) -> tuple[list[float], list[float], int | None]:
        """(xs, ys, the best point's index) as `chart` holds them: what a reader sees."""
        marks = self._number_marks if chart is self.by_number else self._key_marks
        if marks is None:
            return [], [], None
        mark, best = marks
        xs, ys = [float(x) for x in mark.x], [float(y) for y in mark.y]
        rings = list(zip(map(float, best.x), map(float, best.y), strict=True))
        ringed = next((i for i, p in enumerate(zip(xs, ys, strict=True)) if p in rings), None)
        return xs, ys, ringed

    def _confirm(self, sweep_id: int | None) -> None:
        self._confirming = sweep_id
        self.stop.description = (
            "Stop sweep" if sweep_id is None else f"Confirm: stop sweep {sweep_id}"
        )

    def _stop(self) -> str | None:
        sweep_id = self.sweep_id
        if sweep_id is None:
            return "select a sweep first"
        sweep = self._client.sweep(sweep_id)
        if sweep["state"] != SweepState.RUNNING:
            self._confirm(None)
            return f"sweep {sweep_id} is {sweep['state']}: nothing to stop"
        if self._confirming != sweep_id:  # its running trials lose their epoch: ask once
            self._confirm(sweep_id)
            active = trials_active(sweep["trials"])
            return (
                f'sweep {sweep_id} has {active} trials queued or running: press "Confirm: stop'
                f' sweep {sweep_id}" to stop them and queue no more (their packages stay)'
            )
        self._confirm(None)
        stopped = self._client.stop_sweep(sweep_id)
        self.sweeps[sweep_id] = stopped
        return f"sweep {sweep_id} {stopped['state']}"

    def _overlay(self) -> str | None:
        sweep = self.chosen
        if sweep is None:
            return "select a sweep first"
        task_ids = sv.overlay_task_ids(sweep, MAX_RUNS)
        if not task_ids:
            return f"sweep {sweep['id']} has no trials yet"
        return self._show_curves(task_ids, sweep.get("metric"))
