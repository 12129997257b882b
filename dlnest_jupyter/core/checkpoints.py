"""Checkpoint retention: which saved ids each track keeps, as pure functions over values.

Ids count saves and never repeat within a package, across branches too. A save enters:
- the fast track, which keeps the newest `fast` ids;
- the slow track when `id % dilation == 0`, which keeps the newest `slow` such ids;
- the consistent track when the life cycle's `holdThisCheckpoint` said so (newest `consistent`).
A file is deleted when no track holds it any more. A save that no track would keep is never
written at all (DLNest wrote it and deleted it at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

CHECKPOINT_ARGS_KEY = "checkpoint_args"


@dataclass(frozen=True)
class TrackLimits:
    fast: int = 1
    slow: int = 0
    dilation: int = 100
    consistent: int = 1

    @classmethod
    def from_args(cls, args: Mapping[str, Any], file: Path | None = None) -> TrackLimits:
        """Read `checkpoint_args`; a bad limit is a ConfigError naming the key."""
        raw = args.get(CHECKPOINT_ARGS_KEY, {})
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"{CHECKPOINT_ARGS_KEY} must be an object", file=file, key=CHECKPOINT_ARGS_KEY
            )
        defaults = cls()
        values = {
            "fast": _limit(raw, "max_ckpt_in_fast_track", defaults.fast, 0, file),
            "slow": _limit(raw, "max_ckpt_in_slow_track", defaults.slow, 0, file),
            "dilation": _limit(raw, "dilation_in_slow_track", defaults.dilation, 1, file),
            "consistent": _limit(raw, "max_ckpt_in_consistent_track", defaults.consistent, 0, file),
        }
        return cls(**values)


@dataclass(frozen=True)
class Tracks:
    fast: tuple[int, ...] = ()
    slow: tuple[int, ...] = ()
    consistent: tuple[int, ...] = ()

    def held(self) -> frozenset[int]:
        return frozenset(self.fast) | frozenset(self.slow) | frozenset(self.consistent)


@dataclass(frozen=True)
class SavePlan:
    tracks: Tracks  # the tracks after the save
    write: bool  # whether the new checkpoint is kept by any track, so must be written
    delete: tuple[int, ...]  # previously kept ids that no track holds any more


def plan_save(tracks: Tracks, limits: TrackLimits, new_id: int, hold: bool) -> SavePlan:
    """Decide what a save of `new_id` keeps, writes and deletes."""
    after = replace(
        tracks,
        fast=_push(tracks.fast, new_id, limits.fast),
        slow=_push(tracks.slow, new_id, limits.slow)
        if new_id % limits.dilation == 0
        else tracks.slow,
        consistent=_push(tracks.consistent, new_id, limits.consistent)
        if hold
        else tracks.consistent,
    )
    kept = after.held()
    dropped = tuple(sorted(i for i in tracks.held() if i not in kept))
    return SavePlan(tracks=after, write=new_id in kept, delete=dropped)


def _push(track: tuple[int, ...], new_id: int, limit: int) -> tuple[int, ...]:
    return (*track, new_id)[-limit:] if limit > 0 else ()


def _limit(raw: Mapping[str, Any], key: str, default: int, minimum: int, file: Path | None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"{CHECKPOINT_ARGS_KEY}.{key} must be an integer >= {minimum}, got {value!r}",
            file=file,
            key=f"{CHECKPOINT_ARGS_KEY}.{key}",
        )
    return value
