"""Checkpoint writes that barely block training, and never leave a package unloadable.

`save` decides retention (core.package_state.record_save, per branch), copies the state to CPU memory and returns;
a writer thread then makes it durable in this order:

1. the checkpoint file appears only by rename after fsync (atomic_io);
2. `_package.json` names it (and makes it the branch head) only after that;
3. files that no track holds any more are deleted only after that.

A kill at any instant therefore leaves the previous head loadable. One write is in flight at
most: a second `save` waits for the first, which bounds memory to one staged copy. `close`
waits for the last write and re-raises a failure of the writer thread.

A staged copy of up to `REUSE_LIMIT_BYTES` is kept once written and copied into at the next
save: memory fresh from the allocator costs a page fault per page on first touch, about ten
times the copy itself here (92 MB: 115 ms against 10 ms), and that is time training waits.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..core import atomic_io
from ..core.checkpoints import TrackLimits
from ..core.errors import PackageError, as_disk_full
from ..core.package import SavePackage
from ..core.package_state import PackageState, continue_from, record_save

_IMMUTABLE = (int, float, bool, str, bytes, type(None), torch.dtype, torch.device)
# Held between saves, so bounded: a bigger state is staged afresh each time, as before.
REUSE_LIMIT_BYTES = 2 * 2**30


class CheckpointWriter:
    def __init__(self, package: SavePackage, limits: TrackLimits, background: bool = True) -> None:
        self.package = package
        self.limits = limits
        self.background = background
        self._state = package.state()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._failed: tuple[Path, int | None] | None = None  # the write that failed, last head
        self._reusable: Any = None  # the last staged copy, written: the next save copies into it
        package.checkpoints_dir.mkdir(exist_ok=True)
        _sweep_leftovers(package, self._state)

    @property
    def state(self) -> PackageState:
        return self._state

    def start_branch(self, checkpoint_id: int, overrides: Mapping[str, Any] | None = None) -> None:
        """Continue from `checkpoint_id`: its branch goes on, or a new one forks there (always,
        when `overrides` change the config)."""
        self._state = continue_from(self._state, checkpoint_id, overrides)
        self.package.write_state(self._state)

    def save(self, payload: Mapping[str, Any], epoch: int, hold: bool) -> int:
        """Queue a checkpoint of `payload`; returns its id (whether or not a track keeps it)."""
        self.wait()
        new_id = self._state.next_id
        new_state, plan = record_save(self._state, self.limits, new_id, epoch, hold)
        reuse, self._reusable = self._reusable, None
        staged = stage_to_cpu({**payload, "checkpoint_id": new_id}, reuse) if plan.write else None
        doomed = [self.package.checkpoint_path(i, self._state) for i in plan.delete]
        target = self.package.checkpoint_path(new_id, self._state)
        self._failed = (target, self._state.head)  # what a failure of this write will name
        self._state = new_state
        if self.background:
            self._thread = threading.Thread(
                target=self._write_guarded,
                args=(staged, target, new_state, doomed),
                name="dlnest-checkpoint",
            )
            self._thread.start()
        else:
            self._write_guarded(staged, target, new_state, doomed)
            self.wait()
        return new_id

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            target, last_good = self._failed or (self.package.path, None)
            kept = (
                f"checkpoint {last_good} stays loadable"
                if last_good is not None
                else "no checkpoint was written before"
            )
            full = as_disk_full(error, target, f"writing a checkpoint; {kept}")
            if full is not None:
                raise full from error
            raise PackageError(
                f"writing a checkpoint failed: {error}", path=self.package.path
            ) from error

    def close(self) -> None:
        """Wait for the last write (re-raising its failure) and let the staged copy go."""
        try:
            self.wait()
        finally:
            self._reusable = None

    def _write_guarded(
        self, staged: Any, target: Path, state: PackageState, doomed: list[Path]
    ) -> None:
        try:
            self._write(staged, target, state, doomed)
        except BaseException as exc:
            self._error = exc
            return
        if staged is not None and _tensor_bytes(staged) <= REUSE_LIMIT_BYTES:
            self._reusable = staged  # read by the next save, after it joined this thread

    def _write(self, staged: Any, target: Path, state: PackageState, doomed: list[Path]) -> None:
        if staged is not None:
            atomic_io.write_bytes_with(target, lambda handle: torch.save(staged, handle))
        self.package.write_state(state)
        for path in doomed:
            path.unlink(missing_ok=True)


def load_checkpoint(
    package: SavePackage, checkpoint_id: int, map_location: torch.device, weights_only: bool = True
) -> dict[str, Any]:
    path = package.checkpoint_path(checkpoint_id)
    try:
        loaded = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:
        hint = (
            " If you trust this file, set checkpoint_args.weights_only to false."
            if weights_only and "weights_only" in str(exc)
            else ""
        )
        raise PackageError(
            f"cannot load checkpoint {path.name}: {exc}.{hint}", path=package.path
        ) from exc
    if not isinstance(loaded, dict):
        raise PackageError(f"checkpoint {path.name} does not hold a dict", path=package.path)
    return loaded


def stage_to_cpu(value: Any, reuse: Any = None) -> Any:
    """A private copy of `value` with every tensor copied to CPU memory, safe to write later.

    `reuse`: an earlier staged copy nobody reads any more; a tensor at the same place with the
    same shape, dtype and strides is copied into instead of allocated anew.
    """
    if isinstance(value, torch.Tensor):
        source = value.detach()
        if _fits(reuse, source):
            return reuse.copy_(source)
        return source.to("cpu", copy=True)
    if isinstance(value, Mapping):
        old = reuse if isinstance(reuse, dict) else {}
        return {k: stage_to_cpu(v, old.get(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        same = type(reuse) is type(value) and len(reuse) == len(value)
        olds = reuse if same else (None,) * len(value)
        staged = [stage_to_cpu(v, old) for v, old in zip(value, olds, strict=True)]
        return staged if isinstance(value, list) else tuple(staged)
    if isinstance(value, _IMMUTABLE):
        return value
    return copy.deepcopy(value)


def _fits(buffer: Any, source: torch.Tensor) -> bool:
    return (
        isinstance(buffer, torch.Tensor)
        and buffer.layout == source.layout == torch.strided
        and not source.is_quantized
        and buffer.dtype == source.dtype
        and buffer.shape == source.shape
        and buffer.stride() == source.stride()
    )


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _sweep_leftovers(package: SavePackage, state: PackageState) -> None:
    # A kill during step 1 leaves a temp file; a kill between steps 1 and 2 leaves a file whose
    # id `_package.json` never counted (>= next_id), which the next save would reuse anyway.
    # Unheld files with older ids are left alone: a DLNest 0.3 package keeps such files.
    atomic_io.remove_stale_temp_files(package.checkpoints_dir)
    for checkpoint_id in package.ids_on_disk():
        if checkpoint_id >= state.next_id:
            package.checkpoint_path(checkpoint_id, state).unlink(missing_ok=True)
