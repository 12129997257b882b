"""What a continue changes in its run's config: a freq config (`-f`) and `--epochs N`.

A package's `args.json` is its first run's config; DLNest's continue could only rerun it, so a
run configured for 8 epochs trained exactly one more. A continue may now lay a freq config over
the config of the checkpoint it continues from and set `epochs` (train until epoch N in total).
The change is planned and checked at submission, with the freq files read then (a queued task
does not see later edits), and applied when the run starts: the run forks a branch of its own
whose `overrides` hold the new config (core/package_state.py; `args.json` is never rewritten, so
every checkpoint keeps loading with the config it was trained with), and the run's launch record
in `_task.json` says what changed from what (`overrides`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import load_overrides, merge, unknown_key_warnings
from .errors import ConfigError
from .package import ARGS_FILE, SavePackage
from .package_state import CheckpointInfo

EPOCHS_KEY = "epochs"  # DLNest's convention for the planned epoch count


@dataclass(frozen=True)
class Continuation:
    overrides: dict[str, Any] = field(default_factory=dict)  # laid over args.json at the start
    warnings: tuple[str, ...] = ()  # freq keys the package's config lacks


def plan_continuation(
    package: SavePackage,
    checkpoint_id: int,
    freq_path: Path | str | None = None,
    epochs: int | None = None,
) -> Continuation:
    """Check and gather a continue's overrides; a ConfigError names what cannot be done.

    `checkpoint_id`: the resolved checkpoint it continues from. `epochs`: train until epoch N
    in total; refused when the config has no `epochs` key or N is not past the checkpoint's.
    """
    info = package.state().checkpoints.get(checkpoint_id)
    args = package.args_for(checkpoint_id)  # the config that checkpoint was trained with
    overrides: dict[str, Any] = {}
    warnings: list[str] = []
    if freq_path is not None:
        overrides, file_of = load_overrides(freq_path)
        warnings = unknown_key_warnings(overrides, args, file_of)
    planned = merge(args, overrides)
    if epochs is None:
        check_epochs(overrides, Path(freq_path) if freq_path is not None else None)
        warnings += _one_more_epoch(checkpoint_id, info, planned)
    else:
        where = package.path / ARGS_FILE
        if EPOCHS_KEY not in planned:
            raise ConfigError(
                f"--epochs {epochs} needs an {EPOCHS_KEY!r} key in the run's config, and it "
                "has none (its life cycle's needContinueTrain decides when training ends)",
                file=where,
                key=EPOCHS_KEY,
            )
        if info is not None and epochs <= info.epoch:
            raise ConfigError(
                f"--epochs {epochs} is not past checkpoint {checkpoint_id}, which ends epoch "
                f"{info.epoch}: give the total number of epochs to reach, e.g. "
                f"--epochs {info.epoch + max(1, epochs)} for {max(1, epochs)} more",
                file=where,
                key=EPOCHS_KEY,
            )
        overrides = merge(overrides, {EPOCHS_KEY: epochs})
    return Continuation(overrides, tuple(warnings))


def check_epochs(args: Mapping[str, Any], file: Path | None) -> None:
    """Refuse an `epochs` that is not a number: the life cycle compares the epoch with it, and
    the run would fail with a TypeError that names no key."""
    epochs = args.get(EPOCHS_KEY)
    if epochs is None or (isinstance(epochs, int | float) and not isinstance(epochs, bool)):
        return
    raise ConfigError(
        f"{EPOCHS_KEY} is {epochs!r} ({type(epochs).__name__}); it must be a number of epochs",
        file=file,
        key=EPOCHS_KEY,
    )


def _one_more_epoch(
    checkpoint_id: int, info: CheckpointInfo | None, planned: Mapping[str, Any]
) -> list[str]:
    """A warning when the checkpoint already ends the epochs its config plans: the loop trains
    an epoch before its life cycle's needContinueTrain is asked, so a continue of a finished
    run trains one more (DLNest's behaviour), which is rarely what was meant."""
    planned_epochs = planned.get(EPOCHS_KEY)
    if info is None or not isinstance(planned_epochs, int) or isinstance(planned_epochs, bool):
        return []
    if info.epoch < planned_epochs:
        return []
    return [
        f"checkpoint {checkpoint_id} ends epoch {info.epoch}, and the config plans "
        f"{planned_epochs} epochs: this continue trains one more epoch (the loop trains one "
        "before needContinueTrain decides); --epochs N trains until epoch N in all"
    ]


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each dotted leaf key whose value differs: [before, after] (None for an absent side)."""
    changes: dict[str, list[Any]] = {}
    for key in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(key), after.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            for inner, pair in changed_keys(old, new).items():
                changes[f"{key}.{inner}"] = pair
        elif old != new or (key in before) != (key in after):
            changes[key] = [old, new]
    return changes
