"""What a sweep varies, from the magic's flags or REST's JSON, checked once (issue 23)."""

from __future__ import annotations

from typing import Any

import pytest

from dlnest_jupyter.core.errors import RequestError
from dlnest_jupyter.core.sweep_space import (
    Distribution,
    check_keys,
    space_from_flags,
    space_from_json,
    with_params,
)

ARGS = {"lr": 0.1, "optimizer": "sgd", "model": {"width": 64, "depth": 2}, "epochs": 3}


def test_flags_and_json_give_the_same_space_and_the_grid_its_every_combination() -> None:
    flags = space_from_flags(
        ["lr=0.1,0.01", "optimizer=sgd,adam"], ["model.width=int:32:256", "model.depth=choice:2,4"]
    )
    body = space_from_json(
        {"lr": [0.1, 0.01], "optimizer": ["sgd", "adam"]},
        {
            "model.width": {"distribution": "int", "low": 32, "high": 256},
            "model.depth": {"choices": [2, 4]},
        },
    )

    assert flags == body
    assert flags.search["model.width"] == Distribution("int", 32.0, 256.0)
    assert flags.grid_size == 4
    assert list(flags.grid_points()) == [
        {"lr": 0.1, "optimizer": "sgd"},
        {"lr": 0.1, "optimizer": "adam"},
        {"lr": 0.01, "optimizer": "sgd"},
        {"lr": 0.01, "optimizer": "adam"},
    ]


def test_a_trials_config_has_its_values_at_their_dotted_keys_and_the_rest_untouched() -> None:
    trial = with_params(ARGS, {"lr": 0.01, "model.width": 128})

    assert trial == {**ARGS, "lr": 0.01, "model": {"width": 128, "depth": 2}}
    assert ARGS["model"] == {"width": 64, "depth": 2}  # the merged config is not changed


def test_a_key_that_names_nothing_in_the_merged_config_is_refused_naming_it() -> None:
    check_keys(space_from_flags(["model.width=8,16"], []), ARGS)

    with pytest.raises(
        RequestError, match=r"'model\.widht' names nothing .*model has depth, width"
    ):
        check_keys(space_from_flags(["model.widht=8,16"], []), ARGS)
    with pytest.raises(
        RequestError, match=r"'lr\.x' names nothing in the merged config: lr has nothing"
    ):
        check_keys(space_from_flags(["lr.x=1,2"], []), ARGS)


@pytest.mark.parametrize(
    ("grid", "search", "message"),
    [
        ([], [], "a sweep varies something"),
        (["lr"], [], "expected KEY=V1,V2"),
        ([], ["lr=normal:0:1"], "expected KEY=uniform:LO:HI"),
        ([], ["lr=uniform:1:0.5"], "LO must be below HI"),
        ([], ["lr=uniform:0.1:0.1"], "LO must be below HI"),
        ([], ["lr=loguniform:0:1"], "loguniform needs LO above 0"),
        ([], ["lr=uniform:a:b"], "takes LO:HI, two numbers"),
        ([], ["width=int:1.5:4"], "int takes whole numbers"),
        (["lr=1,2"], ["lr=uniform:0:1"], "both a grid key and a searched key"),
        (["a..b=1,2"], [], "expected a dotted config key"),
        ([f"k{i}=1,2,3,4,5,6,7,8,9,10" for i in range(5)], [], "more than 10,000"),
    ],
)
def test_malformed_spaces_are_refused_saying_what_is_wrong(
    grid: list[str], search: list[str], message: str
) -> None:
    with pytest.raises(RequestError, match=message):
        space_from_flags(grid, search)


@pytest.mark.parametrize(
    ("grid", "search", "message"),
    [
        ([1], None, "field 'grid' must be an object"),
        ({"lr": []}, None, "non-empty list of values"),
        (None, {"lr": 0.1}, "give a distribution object"),
        (None, {"lr": {"distribution": "normal", "low": 0, "high": 1}}, "must be uniform"),
        (None, {"lr": {"distribution": "uniform", "low": "0", "high": 1}}, "must be numbers"),
        (None, {"lr": {"choices": []}}, "at least one choice"),
        (None, {"lr": {"choices": "ab"}}, "'choices' must be a list"),
    ],
)
def test_malformed_json_is_refused_saying_what_is_wrong(
    grid: Any, search: Any, message: str
) -> None:
    with pytest.raises(RequestError, match=message):
        space_from_json(grid, search)


def test_a_grid_flag_splits_at_the_commas_outside_brackets_and_quotes() -> None:
    space = space_from_flags(["m.layers=[1,2],[3,4]", 'name=x,"y,z",{"a":1,"b":2}'], [])
    assert space.grid == {"m.layers": ([1, 2], [3, 4]), "name": ("x", "y,z", {"a": 1, "b": 2})}
