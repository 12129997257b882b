"""Small DLNest-style projects written into a temporary folder, for tests.

The toy task is regression on 64 fixed samples with dropout, a shuffled loader, SGD with
momentum and a StepLR schedule, so that every random stream and every piece of optimizer state
matters for reproducing a run. Every hook and runner step appends its name to `record_file`.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

HOOKS = [
    "BAll",
    "AAll",
    "BDatasetInit",
    "ADatasetInit",
    "BModelInit",
    "AModelInit",
    "BTrain",
    "ATrain",
    "BOneEpoch",
    "AOneEpoch",
    "BModelOneStep",
    "AModelOneStep",
    "BVisualize",
    "AVisualize",
    "BValidation",
    "AValidation",
    "BValidateABatch",
    "AValidateABatch",
    "BValidationAnalyze",
    "AValidationAnalyze",
    "BSaveModel",
    "ASaveModel",
]

RECORDER = """
import json

def record(args, event):
    path = args.get("record_file")
    if path:
        with open(path, "a") as handle:
            handle.write(event + "\\n")
"""

DATASET = """
import torch
from dlnest_jupyter import DatasetBase
from recorder import record

class ToyDataset(DatasetBase):
    def init(self, args):
        record(args, "dataset.init")
        generator = torch.Generator().manual_seed(1234)
        x = torch.randn(args["samples"], 4, generator=generator)
        y = x.sum(dim=1, keepdim=True)
        data = list(zip(x, y))
        batch = args["batch_size"]
        self.trainLoader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True)
        self.valLoader = torch.utils.data.DataLoader(data[: args["val_samples"]], batch_size=batch)
        return {"features": 4}, self.trainLoader, self.valLoader
"""

RUNNER = """
import torch
from torch import nn
from dlnest_jupyter import RunnerBaseTorch
from recorder import record

class ToyRunner(RunnerBaseTorch):
    def init(self, args, datasetInfo=None):
        self.model = nn.Sequential(nn.Linear(datasetInfo["features"], 8), nn.Dropout(0.5), nn.Linear(8, 1))
        self.cost = nn.MSELoss()

    def initOptimizer(self):
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.7)

    def initLog(self):
        return {"loss": [], "val": [], "lr": []}

    def runOneStep(self, data, log, iter, epoch):
        record(self.args, "runOneStep")
        x, y = data
        self.optimizer.zero_grad()
        loss = self.cost(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        log["loss"].append(loss.item())

    def visualize(self, log, iter, epoch):
        record(self.args, "visualize")

    def validationInit(self):
        record(self.args, "validationInit")
        self.total = 0.0

    def validateABatch(self, data, iter):
        record(self.args, "validateABatch")
        x, y = data
        with torch.no_grad():
            self.total += self.cost(self.model(x), y).item()

    def validationAnalyze(self, log):
        record(self.args, "validationAnalyze")
        log["val"].append(self.total)
        log["lr"].append(self.optimizer.param_groups[0]["lr"])
"""

LIFE_CYCLE_HEAD = """
from dlnest_jupyter import LifeCycleBase
from recorder import record

class ToyLifeCycle(LifeCycleBase):
    def needVisualize(self, epoch, iter, logdict, args):
        return iter == args.get("visualize_at_iter", -1)

    def needValidation(self, epoch, logdict, args):
        return True

    def commandLineOutput(self, epoch, logdict, args):
        record(args, "commandLineOutput")
        print(f"epoch {epoch} loss {logdict['loss'][-1] if logdict['loss'] else None}")

    def holdThisCheckpoint(self, epoch, logdict, args):
        return epoch % 2 == 0

    def needContinueTrain(self, epoch, logdict, args):
        return epoch < args["epochs"]

    def AOneEpoch(self):
        record(self.args, "AOneEpoch")
        self.runner.scheduler.step()

    def trainAborting(self, exception):
        record(self.args, "trainAborting:" + type(exception).__name__)
        super().trainAborting(exception)
"""


def _hook_method(name: str) -> str:
    return textwrap.indent(
        textwrap.dedent(
            f'''
            def {name}(self):
                record(self.args, "{name}")
                if "{name}" in self.args.get("skip", []):
                    return "Skip"
            '''
        ),
        "    ",
    )


def life_cycle_source(extra: str = "") -> str:
    defined = {"AOneEpoch"}
    methods = "".join(_hook_method(h) for h in HOOKS if h not in defined)
    return LIFE_CYCLE_HEAD + methods + textwrap.indent(textwrap.dedent(extra), "    ")


def write_project(
    root: Path,
    *,
    epochs: int = 3,
    args: dict[str, Any] | None = None,
    dataset: str = DATASET,
    runner: str = RUNNER,
    life_cycle: str | None = None,
) -> Path:
    """Write a project under `root`; returns the root config's path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "code").mkdir(exist_ok=True)
    (root / "code" / "recorder.py").write_text(RECORDER)
    (root / "code" / "ToyDataset.py").write_text(dataset)
    (root / "code" / "ToyRunner.py").write_text(runner)
    (root / "ToyLifeCycle.py").write_text(
        life_cycle if life_cycle is not None else life_cycle_source()
    )
    config: dict[str, Any] = {
        "save_root": "./Saves",
        "runner_name": "ToyRunner",
        "dataset_name": "ToyDataset",
        "life_cycle_name": "ToyLifeCycle",
        "runner_file_path": "./code/ToyRunner.py",
        "dataset_file_path": "./code/ToyDataset.py",
        "life_cycle_file_path": "./ToyLifeCycle.py",
        "other_file_paths": ["./code/recorder.py"],
        "checkpoint_args": {
            "max_ckpt_in_fast_track": 100,
            "max_ckpt_in_slow_track": 0,
            "dilation_in_slow_track": 100,
            "max_ckpt_in_consistent_track": 1,
        },
        "epochs": epochs,
        "samples": 64,
        "val_samples": 16,
        "batch_size": 16,
        "seed": 7,
    }
    config.update(args or {})
    path = root / "root_config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def failing_dataset(error: str) -> str:
    """Dataset source whose init raises `error` (an expression such as "RuntimeError('x')")."""
    return (
        "from dlnest_jupyter import DatasetBase\n"
        "class ToyDataset(DatasetBase):\n"
        f"    def init(self, args):\n        raise {error}\n"
    )


def read_events(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


SCORED_LIFE_CYCLE_EXTRA = """
def AOneEpoch(self):
    import time
    self.runner.scheduler.step()
    time.sleep(self.args["epoch_sleep_s"])
"""


def scored_project(root: Path, *, epochs: int = 3, epoch_sleep_s: float = 0.0) -> Path:
    """A project whose validation also logs `score`, the config's `quality` every epoch, so a
    sweep's outcome is certain: the trial with the highest quality is best, a low one lags."""
    runner = RUNNER.replace(
        'return {"loss": [], "val": [], "lr": []}',
        'return {"loss": [], "val": [], "lr": [], "score": []}',
    ).replace(
        'log["val"].append(self.total)',
        'log["val"].append(self.total)\n        log["score"].append(float(self.args["quality"]))',
    )
    assert runner.count("score") == 2
    return write_project(
        root,
        epochs=epochs,
        runner=runner,
        life_cycle=life_cycle_source(SCORED_LIFE_CYCLE_EXTRA).replace(
            '    def AOneEpoch(self):\n        record(self.args, "AOneEpoch")\n        self.runner.scheduler.step()\n',
            "",
            1,
        ),
        args={"quality": 0.5, "epoch_sleep_s": epoch_sleep_s},
    )
