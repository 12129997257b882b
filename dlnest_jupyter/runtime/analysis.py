"""Load a trained package once and run analysis functions (`experience(self)`) against it.

The loading half (`load_for_analysis`) is what an analyzer kernel runs at bootstrap, too.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import AnalysisScriptError
from ..core.package import SavePackage
from .dataset import DatasetBase
from .devices import default_device_ids
from .lifecycle import LifeCycleBase
from .runner import RunnerBase
from .session import Session, build_dataset, build_runner, open_session, print_warnings
from .status import RunningStatus

Experience = Callable[["AnalyzeContext"], Any]
_script_counter = itertools.count()


class AnalyzeContext:
    """The `self` an experience receives: args, runner (alias model), dataset, log."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.package: SavePackage = session.package
        self.checkpoint_id: int | None = session.checkpoint_id
        self.args: dict[str, Any] = session.args
        self.runner: RunnerBase | None = session.runner
        self.dataset: DatasetBase | None = session.dataset
        self.life_cycle: LifeCycleBase = session.life_cycle
        self.log: dict[str, Any] = session.log
        self.status: RunningStatus = session.status

    @property
    def model(self) -> RunnerBase | None:
        return self.runner

    def __repr__(self) -> str:
        return f"<dlnest analysis of {self.package.path} at checkpoint {self.checkpoint_id}>"


def load_for_analysis(
    record_path: Path | str,
    checkpoint_id: int | None = None,
    device_ids: Sequence[int] | None = None,
    cpu: bool = False,
) -> AnalyzeContext:
    """Build dataset and runner from the package's code and load a checkpoint (default: head)."""
    package = SavePackage.open(record_path)
    ids = list(device_ids) if device_ids is not None else default_device_ids(cpu)
    session = open_session(
        package, ids, -1 if checkpoint_id is None else checkpoint_id, plugins=False
    )
    print_warnings(session)
    build_dataset(session)
    build_runner(session, restore_rng=False)
    session.status.status = "Analyzing"
    return AnalyzeContext(session)


def load_experience(script_path: Path | str) -> Experience:
    """Import a script afresh (edits take effect) and return its `experience` function."""
    path = Path(script_path).expanduser().resolve()
    if not path.is_file():
        raise AnalysisScriptError("analysis script does not exist", path=path)
    spec = importlib.util.spec_from_file_location(
        f"dlnest_experience_{next(_script_counter)}", path
    )
    if spec is None or spec.loader is None:
        raise AnalysisScriptError("cannot be imported as a Python module", path=path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    experience = getattr(module, "experience", None)
    if not callable(experience):
        raise AnalysisScriptError("defines no function experience(self)", path=path)
    return experience  # type: ignore[no-any-return]


def analyze(
    record_path: Path | str,
    exp_func: Experience | None = None,
    checkpoint_id: int | None = None,
    script_path: Path | str | None = None,
    cpu: bool = False,
    device_ids: Sequence[int] | None = None,
) -> Any:
    """Load `record_path` and call `exp_func(self)` (or the script's `experience`); return its result."""
    if (exp_func is None) == (script_path is None):
        raise TypeError("analyze() needs exactly one of exp_func or script_path")
    experience = exp_func if exp_func is not None else load_experience(script_path)  # type: ignore[arg-type]
    context = load_for_analysis(record_path, checkpoint_id, device_ids, cpu)
    return experience(context)
