"""The Analyzers tab shows only what belongs to the analyzer it names (hand-made replies)."""

from __future__ import annotations

from typing import Any

from dlnest_jupyter.dashboard.analyzer_panel import AnalyzerPanel


def analyzer(task_id: int, state: str = "ready") -> dict[str, Any]:
    return {
        "id": task_id,
        "kind": "analyze",
        "state": "running",
        "progress": {"analyzer": state, "experiments": 1, "loads": 1},
    }


def experiment(experiment_id: int, state: str = "succeeded") -> dict[str, Any]:
    return {
        "id": experiment_id,
        "name": "getAcc",
        "state": state,
        "output": "accuracy 0.9833\n",
        "offset": 16,
        "displays": [],
        "display_offset": 0,
        "error": None,
    }


def test_a_new_analyzer_in_the_place_of_a_deleted_one_shows_nothing_of_its_results() -> None:
    panel = AnalyzerPanel(lambda _: None, client=None)
    panel.update([analyzer(40)])
    panel.experiment = (40, 5)
    assert panel.follow(40, experiment(5))
    assert "accuracy 0.9833" in panel.output.outputs[0]["text"]

    assert panel.update([analyzer(42, "loading")])  # 40 deleted; Analyze started 42

    assert panel.task_id == 42 and panel.analyzer.label == "42 (loading, 1 experiment)"
    assert panel.output.outputs == () and panel.state.value == ""
    assert panel.experiment is None and panel.script.options == ()
    assert "analyzer 42:" in panel.kernel.value and "loading" in panel.kernel.value


def test_a_late_reply_about_another_analyzer_is_dropped() -> None:
    panel = AnalyzerPanel(lambda _: None, client=None)
    panel.update([analyzer(40), analyzer(42)])
    panel.analyzer.value = 40
    panel.update([analyzer(40), analyzer(42)])
    panel.experiment = (40, 5)
    panel.analyzer.value = 42  # the user picks 42 while 40's experiment is being read
    panel.update([analyzer(40), analyzer(42)])

    assert not panel.follow(40, experiment(5))
    assert panel.output.outputs == () and "experiment" not in panel.state.value


def test_a_kernel_busy_with_a_notebook_cell_is_shown_and_not_interrupted_on_a_guess() -> None:
    told: list[str | None] = []  # what the button's action tells the user
    # No client: nothing may be sent.
    panel = AnalyzerPanel(lambda action: told.append(action()), client=None)
    busy = analyzer(40)
    busy["progress"]["kernel"] = "busy"

    panel.update([busy])

    assert "kernel busy" in panel.kernel.value
    panel.interrupt.click()
    [said] = told
    assert said is not None and "busy with code run from a notebook or console" in said
    assert "nothing was interrupted" in said
