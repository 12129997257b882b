"""Runs inside a training process or an analyzer kernel: the user API and the loop. Imports torch."""

from .analysis import AnalyzeContext, analyze, load_for_analysis
from .dataset import DatasetBase
from .lifecycle import LifeCycleBase
from .runner import ModelBase, RunnerBase
from .runner_torch import ModelBaseTorch, RunnerBaseTorch
from .status import RunningStatus

__all__ = [
    "AnalyzeContext",
    "DatasetBase",
    "LifeCycleBase",
    "ModelBase",
    "ModelBaseTorch",
    "RunnerBase",
    "RunnerBaseTorch",
    "RunningStatus",
    "analyze",
    "load_for_analysis",
]
