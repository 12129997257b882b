"""Seeding and random-number-generator state, so a continued CPU run repeats the original."""

from __future__ import annotations

import random
from typing import Any

import torch

try:
    import numpy as np
except ImportError:  # numpy is optional for torch; seed it only when present
    np = None  # type: ignore[assignment]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    # torch.manual_seed, less its queueing of a lazy CUDA seeding (which captures a stack
    # trace, milliseconds in a task just forked) where this torch has no CUDA to seed.
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if np is not None:
        np.random.seed(seed % 2**32)


def capture_rng_state() -> dict[str, Any]:
    """Every generator's state, in types `torch.load(weights_only=True)` accepts."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    if np is not None:
        numpy_state: Any = np.random.get_state()
        kind, keys, pos, has_gauss, cached = numpy_state
        state["numpy"] = [kind, torch.from_numpy(keys.astype("int64")), pos, has_gauss, cached]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state and np is not None:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, cached))
