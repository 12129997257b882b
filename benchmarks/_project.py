"""A benchmark project: an MLP runner (or a no-op one) over pre-built batches, no checkpoints.

The life cycle stamps the clock at BTrain and ATrain, so the framework's time is the loop
itself, not imports or model construction.
"""

from __future__ import annotations

import json
from pathlib import Path

RUNNER = """
import torch
from torch import nn
from dlnest_jupyter import RunnerBaseTorch

class Runner(RunnerBaseTorch):
    def init(self, args, datasetInfo=None):
        if args["noop"]:
            return
        width = args["width"]
        self.model = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
        self.cost = nn.CrossEntropyLoss()

    def initOptimizer(self):
        if not self.args["noop"]:
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)

    def initLog(self):
        return {"loss": []}

    def runOneStep(self, data, log, iter, epoch):
        if self.args["noop"]:
            return
        x, y = data
        self.optimizer.zero_grad()
        loss = self.cost(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        log["loss"].append(loss.item())
"""

DATASET = """
import torch
from dlnest_jupyter import DatasetBase

class Data(DatasetBase):
    def init(self, args):
        generator = torch.Generator().manual_seed(0)
        batches = [
            (torch.randn(args["batch"], args["width"], generator=generator), torch.randint(0, 10, (args["batch"],), generator=generator))
            for _ in range(args["distinct_batches"])
        ]
        steps = args["steps"]
        self.train = [batches[i % len(batches)] for i in range(steps)]
        return {}, self.train, []
"""

LIFE_CYCLE = """
import time
from dlnest_jupyter import LifeCycleBase

STAMPS = {}

class Cycle(LifeCycleBase):
    def BTrain(self):
        STAMPS["start"] = time.perf_counter()

    def ATrain(self):
        STAMPS["end"] = time.perf_counter()

    def needSaveModel(self, epoch, logdict, args):
        return False

    def commandLineOutput(self, epoch, logdict, args):
        pass
"""


def write_bench_project(root: Path, **args: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Runner.py").write_text(RUNNER)
    (root / "Data.py").write_text(DATASET)
    (root / "Cycle.py").write_text(LIFE_CYCLE)
    config = {
        "runner_name": "Runner",
        "runner_file_path": "./Runner.py",
        "dataset_name": "Data",
        "dataset_file_path": "./Data.py",
        "life_cycle_name": "Cycle",
        "life_cycle_file_path": "./Cycle.py",
        "seed": 0,
        "distinct_batches": 16,
        **args,
    }
    path = root / "root_config.json"
    path.write_text(json.dumps(config))
    return path
