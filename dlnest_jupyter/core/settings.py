"""The scheduler's settings: which devices it uses, how many tasks a card takes, the launch delay
and the starvation wait, with the one table that checks a change to any of them.

Apart from `placement.py`: the settings change with the REST contract and the dashboard's panel
(a new setting, a new range), the placement pass with how tasks are packed; the store, the
dashboard and the API read the settings without needing the pass.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .devices import CPU_ID
from .errors import RequestError
from .fields import FieldSpec, boolean, integer, integer_list, number, optional, validated


@dataclass(frozen=True)
class Settings:
    devices: tuple[int, ...] | None = None  # enabled device ids (-1 is the CPU); None: all
    max_tasks_per_device: int = 10_000
    launch_delay_s: float = 0.0  # least time between two launches on one device
    starvation_s: float = 600.0
    # Learned memory (core/memory_policy.py): a run's reservation shrinks to its measured peak
    # plus the margin once it has warmed up (its first whole epoch, or this many steps).
    memory_warmup_steps: int = 200
    memory_margin_pct: float = 10.0
    memory_margin_mb: int = 256
    shrink_given: bool = False  # also shrink what a user gave with -m
    # The guard: cap each run's CUDA allocator at its reservation plus the margin, so a run that
    # outgrows its share fails itself, not its neighbours; and how often a run that ran out of
    # GPU memory is queued again with more.
    guard_memory: bool = False
    oom_retries: int = 1

    def enabled(self, device_id: int) -> bool:
        return self.devices is None or device_id in self.devices

    def updated(self, changes: Mapping[str, Any]) -> Settings:
        """These settings with `changes` applied; a bad change is a RequestError naming it."""
        checked = validated(changes, SETTINGS_FIELDS)
        if checked.get("devices") is not None:
            checked["devices"] = tuple(dict.fromkeys(checked["devices"]))  # [0, 0]: [0]
        return replace(self, **checked)

    def to_json(self) -> dict[str, Any]:
        """The REST contract's settings object."""
        return {
            "devices": list(self.devices) if self.devices is not None else None,
            "launch_delay_s": self.launch_delay_s,
            "max_tasks_per_device": self.max_tasks_per_device,
            "starvation_s": self.starvation_s,
            "memory_warmup_steps": self.memory_warmup_steps,
            "memory_margin_pct": self.memory_margin_pct,
            "memory_margin_mb": self.memory_margin_mb,
            "shrink_given": self.shrink_given,
            "guard_memory": self.guard_memory,
            "oom_retries": self.oom_retries,
        }


def check_devices(devices: Sequence[int] | None, known: Collection[int]) -> None:
    """Refuse a `devices` setting naming a device this machine (or cluster) lacks: every task
    for a card would wait for ever on it, "every GPU is disabled"."""
    unknown = sorted(set(devices or ()) - set(known))
    if unknown:
        raise RequestError(
            f"devices: no device {', '.join(map(str, unknown))} here; the devices are "
            f"{', '.join(map(str, sorted(known)))} (-1 is the CPU)"
        )


_MAX_SECONDS = 366 * 24 * 3600.0
# Every setting's type and range, checked once, by `Settings.updated` (REST and in-process alike).
SETTINGS_FIELDS = {
    "devices": FieldSpec(
        optional(integer_list(CPU_ID, 2**31, 4096, "device ids (-1 is the CPU), or null for all"))
    ),
    "max_tasks_per_device": FieldSpec(integer(1, 1_000_000)),
    "launch_delay_s": FieldSpec(number(0, _MAX_SECONDS)),
    "starvation_s": FieldSpec(number(0, _MAX_SECONDS)),
    "memory_warmup_steps": FieldSpec(integer(1, 10**9)),
    "memory_margin_pct": FieldSpec(number(0, 1000)),
    "memory_margin_mb": FieldSpec(integer(0, 2**31)),
    "shrink_given": FieldSpec(boolean),
    "guard_memory": FieldSpec(boolean),
    "oom_retries": FieldSpec(integer(0, 100)),
}
