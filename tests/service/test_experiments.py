"""Experiments' output as readers see it: only what is new after their offsets, or awaited."""

from __future__ import annotations

import pytest

from dlnest_jupyter.core.errors import ExperimentNotFoundError
from dlnest_jupyter.core.tasks import ExperimentState
from dlnest_jupyter.service.kernels import experiments
from dlnest_jupyter.service.kernels.experiments import ExperimentBook


def test_a_reader_gets_only_the_text_and_displays_after_its_offsets() -> None:
    book = ExperimentBook()
    experiment = book.open(task_id=3, name="getAcc")
    book.append_text(experiment, "epoch 1\n")
    book.add_display(experiment, {"data": {"text/plain": "<Figure>"}, "metadata": {}})
    first = experiment.to_json()
    book.append_text(experiment, "epoch 2\n")

    second = experiment.to_json(first["offset"], first["display_offset"])

    assert (first["output"], len(first["displays"])) == ("epoch 1\n", 1)
    assert (second["output"], second["displays"], second["offset"]) == ("epoch 2\n", [], 16)


def test_dropped_old_text_keeps_offsets_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(experiments, "MAX_OUTPUT_CHARS", 10)
    book = ExperimentBook()
    experiment = book.open(1, "chatty")
    book.append_text(experiment, "0123456789")
    book.append_text(experiment, "abcde")

    assert experiment.to_json(0)["output"] == "56789abcde"  # what is left of an old offset
    assert experiment.to_json(12)["output"] == "cde"
    assert experiment.to_json(15)["output"] == ""


def test_old_displays_are_dropped_past_the_cap_and_offsets_stay_absolute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(experiments, "MAX_DISPLAY_BYTES", 1000)
    book = ExperimentBook()
    experiment = book.open(1, "plots every step")
    for step in range(5):  # 400 bytes each: two fit under the cap
        book.add_display(experiment, {"data": {"image/png": f"{step}" * 400}, "metadata": {}})

    kept = experiment.to_json()
    assert [d["data"]["image/png"][0] for d in kept["displays"]] == ["3", "4"]
    assert kept["display_offset"] == 5
    assert [d["data"]["image/png"][0] for d in experiment.to_json(0, 4)["displays"]] == ["4"]
    assert experiment.to_json(0, 5)["displays"] == []
    assert book.change(experiment, kept["offset"], 4).done()  # display 4 is new to that reader
    book.add_display(experiment, {"data": {"image/png": "x" * 5000}, "metadata": {}})
    assert [d["data"]["image/png"][0] for d in experiment.to_json()["displays"]] == ["x"]


def test_a_long_poll_wakes_at_the_next_change_and_timed_out_polls_do_not_pile_up() -> None:
    book = ExperimentBook()
    experiment = book.open(1, "quiet")
    for _ in range(50):  # pollers that gave up cancel their futures
        assert book.change(experiment, 0, 0).cancel()
    waiting = book.change(experiment, 0, 0)

    assert len(experiment.waiters) == 1 and not waiting.done()
    book.append_text(experiment, "x")
    assert waiting.done() and book.change(experiment, 0, 0).done()  # already something new


def test_an_experiment_ends_once_and_old_ones_are_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(experiments, "MAX_KEPT_PER_ANALYZER", 2)
    book = ExperimentBook()
    first, second, third = (book.open(7, name) for name in ("a", "b", "c"))
    book.finish(second, ExperimentState.FAILED, "ZeroDivisionError")
    book.finish(second, ExperimentState.SUCCEEDED)

    assert (book.get(7, 2).state, book.get(7, 2).error) == (
        ExperimentState.FAILED,
        "ZeroDivisionError",
    )
    assert [e.id for e in book.unfinished(7)] == [third.id] and book.count(7) == 3
    with pytest.raises(ExperimentNotFoundError, match="has no experiment 1"):
        book.get(7, first.id)


def test_a_queued_experiment_is_waited_for_until_it_begins_and_ends() -> None:
    book = ExperimentBook()
    queued = book.open(4, "cell", ExperimentState.QUEUED)
    waiting = book.change(queued, 0, 0)

    assert not waiting.done() and book.unfinished(4) == [queued]
    book.begin(queued)
    assert waiting.done() and queued.state is ExperimentState.RUNNING
    book.finish(queued, ExperimentState.SUCCEEDED)
    assert book.unfinished(4) == [] and book.change(queued, 0, 0).done()


def test_a_result_is_shown_and_announced_with_the_end_not_alone() -> None:
    book = ExperimentBook()
    experiment = book.open(1, "getAcc")
    waiting = book.change(experiment, 0, 0)
    result = {"data": {"text/plain": "0.93"}, "metadata": {}}

    book.set_result(experiment, "0.93", result)
    assert not waiting.done() and not book.change(experiment, 0, 0).done()
    assert experiment.to_json()["displays"] == []  # only the reply and idle status follow it
    book.finish(experiment, ExperimentState.SUCCEEDED)

    ended = experiment.to_json()
    assert waiting.done()
    assert (ended["state"], ended["result"], ended["displays"]) == ("succeeded", "0.93", [result])


def test_output_after_a_result_shows_the_result_first() -> None:
    book = ExperimentBook()
    experiment = book.open(1, "plots after")
    waiting = book.change(experiment, 0, 0)
    book.set_result(experiment, "1", {"data": {"text/plain": "1"}, "metadata": {}})
    book.add_display(experiment, {"data": {"image/png": "png"}, "metadata": {}})

    assert waiting.done()
    shown = [d["data"] for d in experiment.to_json()["displays"]]
    assert shown == [{"text/plain": "1"}, {"image/png": "png"}]


def test_a_result_after_the_end_is_shown_at_once() -> None:
    book = ExperimentBook()
    experiment = book.open(1, "failed")
    book.finish(experiment, ExperimentState.FAILED, "Traceback ...")
    waiting = book.change(experiment, 0, 0)  # an ended experiment answers at once
    book.set_result(experiment, "2", {"data": {"text/plain": "2"}, "metadata": {}})

    assert waiting.done() and experiment.to_json()["displays"][0]["data"] == {"text/plain": "2"}
