"""RunnerBaseTorch (alias ModelBaseTorch): a runner whose modules, optimizers and LR schedulers
are found by assignment and saved by attribute name.

Assigning an `nn.Module` to an attribute registers it: it moves to the run's device and, under
DDP, is wrapped. Optimizers and schedulers (torch 2.x `LRScheduler` subclasses and
`ReduceLROnPlateau` included; DLNest missed both) are recorded by attribute name. Checkpoints key
modules by attribute name too, so adding a module does not shift the others' keys.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from .runner import RunnerBase
from .status import CPU, DDP, RunningStatus

_SCHEDULER_TYPES = (LRScheduler, ReduceLROnPlateau)
UNNAMED_PREFIX = "_registered_"


class RunnerBaseTorch(RunnerBase):
    _modules_by_name: dict[str, nn.Module]
    _registered: list[nn.Module]
    _optimizers: dict[str, Optimizer]
    _schedulers: dict[str, Any]

    def __init__(
        self,
        args: dict[str, Any],
        plugins: list[Any] | None = None,
        status: RunningStatus | None = None,
    ) -> None:
        object.__setattr__(self, "_modules_by_name", {})
        object.__setattr__(self, "_registered", [])
        object.__setattr__(self, "_optimizers", {})
        object.__setattr__(self, "_schedulers", {})
        super().__init__(args, plugins, status)

    @property
    def _device(self) -> torch.device:
        return getattr(self._status, "device", None) or torch.device("cpu")

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, nn.Module):
            value = self.register(value)
            self._modules_by_name[name] = value
        elif isinstance(value, Optimizer):
            self._optimizers[name] = value
        elif isinstance(value, _SCHEDULER_TYPES):
            self._schedulers[name] = value
        object.__setattr__(self, name, value)

    def register(self, module: nn.Module, syncBN: bool = False) -> nn.Module:
        """Move `module` to the run's device (wrapping it under DDP) and return what to use.

        Registering the same module twice returns the first result (DLNest registered twice).
        """
        for known in self._registered:
            if module is known or module is getattr(known, "module", None):
                return known
        placed = module if self._status.env == CPU else module.to(self._device)
        if self._status.env == DDP and any(p.requires_grad for p in placed.parameters()):
            # A loss or other parameter-free module has nothing to synchronise; DDP refuses it.
            placed = _DDPModule(placed, syncBN)
        self._registered.append(placed)
        return placed

    def getSaveDict(self) -> dict[str, Any]:
        return {
            "modules": {name: _bare(m).state_dict() for name, m in self._named_modules().items()},
            "optimizer": {name: o.state_dict() for name, o in self._optimizers.items()},
            "scheduler": {name: s.state_dict() for name, s in self._schedulers.items()},
        }

    def loadSaveDict(self, saveDict: dict[str, Any]) -> None:
        modules = self._named_modules()
        saved: dict[Any, Any] | None = saveDict.get("modules")
        if saved is None:  # DLNest 0.3 layout: integer keys in registration order
            legacy: dict[Any, Any] = saveDict
            saved = {name: legacy[i] for i, name in enumerate(modules) if i in legacy}
        for name, module in modules.items():
            if name in saved:
                _bare(module).load_state_dict(saved[name])
            else:
                print(f"dlnest: the checkpoint has no state for module {name!r}", file=sys.stderr)
        for kind, registry in (("optimizer", self._optimizers), ("scheduler", self._schedulers)):
            for name, state in saveDict.get(kind, {}).items():
                if name in registry:
                    registry[name].load_state_dict(state)

    def _named_modules(self) -> dict[str, nn.Module]:
        named = dict(self._modules_by_name)
        bound = {id(m) for m in named.values()}
        for index, module in enumerate(self._registered):
            if id(module) not in bound:
                named[f"{UNNAMED_PREFIX}{index}"] = module
        return named

    def _reduceSum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over DDP ranks (every rank gets the result); the identity outside DDP."""
        if self._status.env != DDP:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total

    def _reduceMean(self, tensor: torch.Tensor) -> torch.Tensor:
        """Mean over DDP ranks (every rank gets the result); the identity outside DDP."""
        if self._status.env != DDP:
            return tensor
        return self._reduceSum(tensor) / self._status.worldSize


class _DDPModule(nn.Module):
    """A DDP-wrapped module that still answers attribute lookups of the module inside.

    Calling it runs the DDP forward; `singleCard(...)` runs the bare module (DLNest returned None).
    """

    def __init__(self, module: nn.Module, sync_bn: bool) -> None:
        super().__init__()
        if sync_bn:
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)  # type: ignore[no-untyped-call]
        on_gpu = module_device(module).type == "cuda"
        self.ddp = nn.parallel.DistributedDataParallel(
            module,
            device_ids=[module_device(module).index] if on_gpu else None,
            find_unused_parameters=True,
        )

    @property
    def module(self) -> nn.Module:
        inner: nn.Module = self.ddp.module
        return inner

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.ddp(*args, **kwargs)

    def singleCard(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.ddp.module, name)


def module_device(module: nn.Module) -> torch.device:
    for parameter in module.parameters():
        return parameter.device
    return torch.device("cpu")


def _bare(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, _DDPModule) else module


ModelBaseTorch = RunnerBaseTorch
