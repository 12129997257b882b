"""What a sweep varies: a grid of values and searched distributions over dotted config keys.

`%dlnest sweep --grid lr=0.1,0.01 --search model.width=int:32:256` and REST's `{"grid": {"lr":
[0.1, 0.01]}, "search": {"model.width": {"distribution": "int", "low": 32, "high": 256}}}` both
become one `SweepSpace`, checked here once: a key must name something in the merged config
(`check_keys`), a distribution must be well formed (`LO < HI`, `loguniform` above 0, choices
not empty), a grid holds at most `MAX_GRID_POINTS` points, and no secret is varied
(`core/secrets.py`). A trial's config is the merged config with its values set at their dotted
keys (`with_params`). Pure: values in, values out; Optuna, which samples the searched keys, is
the sweep driver's.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import RequestError
from .secrets import sweep_secret

MAX_GRID_POINTS = 10_000
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")


@dataclass(frozen=True)
class Distribution:
    kind: str  # one of DISTRIBUTIONS
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def to_json(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        return {"distribution": self.kind, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class SweepSpace:
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    search: Mapping[str, Distribution] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        return (*self.grid, *self.search)

    @property
    def grid_size(self) -> int:
        return math.prod(len(values) for values in self.grid.values()) if self.grid else 0

    def grid_points(self) -> Iterator[dict[str, Any]]:
        """Every combination of the grid's values, the first key varying slowest."""
        keys = list(self.grid)
        for values in itertools.product(*(self.grid[key] for key in keys)):
            yield dict(zip(keys, values, strict=True))

    def grid_point(self, number: int) -> dict[str, Any]:
        """The `number`th of `grid_points()`, without walking the ones before it."""
        point: dict[str, Any] = {}
        for key in reversed(list(self.grid)):
            values = self.grid[key]
            number, index = divmod(number, len(values))
            point[key] = values[index]
        return {key: point[key] for key in self.grid}

    def to_json(self) -> dict[str, Any]:
        return {
            "grid": {key: list(values) for key, values in self.grid.items()},
            "search": {key: d.to_json() for key, d in self.search.items()},
        }


def space_from_flags(grid: Sequence[str], search: Sequence[str]) -> SweepSpace:
    """The magic's `--grid KEY=V1,V2` and `--search KEY=DIST` flags as a space."""
    grid_values = dict(_grid_flag(flag) for flag in grid)
    searched = dict(_search_flag(flag) for flag in search)
    return checked_space(grid_values, searched)


def space_from_json(grid: Any, search: Any) -> SweepSpace:
    """REST's `grid` (`{key: [values]}`) and `search` (`{key: {"distribution", "low", "high"}`
    or `{"choices": [...]}}`) as a space."""
    if grid is not None and not isinstance(grid, Mapping):
        raise RequestError("field 'grid' must be an object of key: [values]")
    if search is not None and not isinstance(search, Mapping):
        raise RequestError("field 'search' must be an object of key: distribution")
    grid_values = {}
    for key, values in (grid or {}).items():
        if not isinstance(values, list) or not values:
            raise RequestError(f"grid key {key!r}: give a non-empty list of values")
        grid_values[key] = tuple(values)
    searched = {key: _distribution_json(key, raw) for key, raw in (search or {}).items()}
    return checked_space(grid_values, searched)


def checked_space(
    grid: Mapping[str, tuple[Any, ...]], search: Mapping[str, Distribution]
) -> SweepSpace:
    for key in (*grid, *search):
        _check_key_text(key)
    for key in (*grid, *search):
        values = grid[key] if key in grid else search[key].choices
        if sweep_secret(key, values):
            # A trial's values are shown in every reply about it (its task, the sweep, the
            # log): a secret varied by a sweep could not stay out of them (core/secrets.py).
            raise RequestError(
                f"sweep key {key!r} would vary a secret (a plugin config key named like "
                "password, token or secret), which sweeps show in every reply: set it in the "
                "config instead"
            )
    both = sorted(set(grid) & set(search))
    if both:
        raise RequestError(f"{both[0]!r} is both a grid key and a searched key: give it once")
    if not grid and not search:
        raise RequestError("a sweep varies something: give --grid KEY=V1,V2 or --search KEY=DIST")
    space = SweepSpace(dict(grid), dict(search))
    if space.grid_size > MAX_GRID_POINTS:
        raise RequestError(
            f"the grid has {space.grid_size:,} points, more than {MAX_GRID_POINTS:,}: "
            "search some keys instead (--search)"
        )
    return space


def check_keys(space: SweepSpace, args: Mapping[str, Any]) -> None:
    """Each varied key must name something in the merged config; the first that does not is
    refused, with the keys that are there at its level."""
    for key in (*space.grid, *space.search):
        level: Any = args
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(level, Mapping) or part not in level:
                where = ".".join(parts[:depth]) or "the config"
                known = ", ".join(sorted(level)) if isinstance(level, Mapping) else "nothing"
                raise RequestError(
                    f"sweep key {key!r} names nothing in the merged config: {where} has "
                    f"{known or 'no keys'}"
                )
            level = level[part]


def with_params(args: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """`args` with each dotted key of `params` set to its value (the rest copied, not shared)."""
    result: dict[str, Any] = json.loads(json.dumps(args))
    for key, value in params.items():
        *path, last = key.split(".")
        level = result
        for part in path:
            level = level[part]
        level[last] = value
    return result


def _grid_flag(flag: str) -> tuple[str, tuple[Any, ...]]:
    key, sep, raw = flag.partition("=")
    if not sep or not raw:
        raise RequestError(f"--grid {flag!r}: expected KEY=V1,V2,...")
    return key, tuple(_value(text) for text in _top_level_items(raw))


def _search_flag(flag: str) -> tuple[str, Distribution]:
    key, sep, raw = flag.partition("=")
    kind, _, rest = raw.partition(":")
    if not sep or kind not in DISTRIBUTIONS or not rest:
        raise RequestError(
            f"--search {flag!r}: expected KEY=uniform:LO:HI, loguniform:LO:HI, int:LO:HI or "
            "choice:A,B,C"
        )
    if kind == "choice":
        return key, _checked(
            key, Distribution(kind, choices=tuple(map(_value, _top_level_items(rest))))
        )
    low, sep, high = rest.partition(":")
    try:
        bounds = (float(low), float(high)) if sep else None
    except ValueError:
        bounds = None
    if bounds is None:
        raise RequestError(f"--search {flag!r}: {kind} takes LO:HI, two numbers")
    return key, _checked(key, Distribution(kind, *bounds))


def _distribution_json(key: str, raw: Any) -> Distribution:
    if not isinstance(raw, Mapping):
        raise RequestError(f"search key {key!r}: give a distribution object")
    if "choices" in raw:
        choices = raw["choices"]
        if not isinstance(choices, list):
            raise RequestError(f"search key {key!r}: 'choices' must be a list")
        return _checked(key, Distribution("choice", choices=tuple(choices)))
    kind, low, high = raw.get("distribution"), raw.get("low"), raw.get("high")
    if kind not in DISTRIBUTIONS or kind == "choice":
        raise RequestError(
            f"search key {key!r}: 'distribution' must be uniform, loguniform or int "
            "(or give 'choices')"
        )
    bounds = [v for v in (low, high) if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(bounds) != 2:
        raise RequestError(f"search key {key!r}: 'low' and 'high' must be numbers")
    return _checked(key, Distribution(kind, float(bounds[0]), float(bounds[1])))


def _checked(key: str, distribution: Distribution) -> Distribution:
    if distribution.kind == "choice":
        if not distribution.choices:
            raise RequestError(f"search key {key!r}: give at least one choice")
        return distribution
    low, high = distribution.low, distribution.high
    assert low is not None and high is not None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise RequestError(f"search key {key!r}: LO must be below HI (got {low:g} and {high:g})")
    if distribution.kind == "loguniform" and low <= 0:
        raise RequestError(f"search key {key!r}: loguniform needs LO above 0 (got {low:g})")
    if distribution.kind == "int" and not (low.is_integer() and high.is_integer()):
        raise RequestError(f"search key {key!r}: int takes whole numbers (got {low:g}:{high:g})")
    return distribution


def _check_key_text(key: Any) -> None:
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise RequestError(f"sweep key {key!r}: expected a dotted config key such as model.lr")


def _top_level_items(raw: str) -> list[str]:
    """`raw` split at the commas outside brackets and quotes: `[1,2],[3,4]` is two lists."""
    items, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(raw):
        if char == '"' and (index == 0 or raw[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char in "[{":
            depth += 1
        elif not quoted and char in "]}":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0 and not quoted:
            items.append(raw[start:index])
            start = index + 1
    items.append(raw[start:])
    return items


def _value(text: str) -> Any:
    """A flag's value as JSON (numbers, true, null, lists), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text
