"""A DLNest 0.3 project as its users wrote them, for the porting tests: every file imports from
`DLNest.*`, the configs list DLNest's four plugins, and the life cycle reports its best accuracy
to MailsNote, in the shape of DLNest's own MNIST template (FactoryFiles/FactoryMNIST at tag
0.3.2). Its files are written here, not copied: that repository carries no licence. The data is
scikit-learn's bundled 8x8 digits, as nothing may be downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LIFE_CYCLE = """
from DLNest.Common.DatasetBase import DatasetBase
from DLNest.Common.RunnerBase import RunnerBase
from DLNest.Common.LifeCycleBase import LifeCycleBase
from DLNest.Plugins.MailsNote import DLNestPlugin as MailsNotePlugin


class LifeCycle(LifeCycleBase):
    def BAll(self):
        self.maxAcc = 0.0

    def needVisualize(self, epoch : int, iter : int, logdict : dict, args : dict):
        return True

    def needValidation(self, epoch : int, logdict : dict, args : dict):
        return True

    def commandLineOutput(self, epoch : int, logdict : dict, args : dict):
        print("Epoch #" + str(epoch) + " finished!")

    def needSaveModel(self, epoch : int, logdict : dict, args : dict):
        return True

    def holdThisCheckpoint(self, epoch : int, logdict : dict, args : dict):
        if logdict["acc"][-1] > self.maxAcc:
            self.maxAcc = logdict["acc"][-1]
            MailsNotePlugin.giveResultValues({"acc" : self.maxAcc})
            return True
        return False

    def getSaveDict(self):
        return {"max_acc" : self.maxAcc}

    def loadSaveDict(self, saveDict):
        self.maxAcc = saveDict["max_acc"]

    def AOneEpoch(self):
        if self.getArgs().get("abort_at_epoch") == self._status.epoch:
            raise RuntimeError("stopped on purpose at epoch " + str(self._status.epoch))

    def needContinueTrain(self, epoch : int, logdict : dict, args : dict):
        return epoch < args["epochs"]
"""

DATASET = """
from DLNest.Common.DatasetBase import DatasetBase

import torch
from torch.utils import data
from sklearn.datasets import load_digits


class DigitsDataset(DatasetBase):
    def init(self, args : dict):
        digits = load_digits()
        x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(digits.target, dtype=torch.long)
        cut = args["dataset_config"]["train_samples"]
        self.dataTrain = data.TensorDataset(x[:cut], y[:cut])
        self.dataTest = data.TensorDataset(x[cut:cut + 300], y[cut:cut + 300])
        batch = args["dataset_config"]["batch_size"]
        trainSampler = self.getSampler(self.dataTrain)
        if trainSampler is None:
            self.trainLoader = data.DataLoader(self.dataTrain, batch_size=batch, shuffle=True)
        else:
            self.trainLoader = data.DataLoader(self.dataTrain, batch_size=batch, sampler=trainSampler)
        self.testLoader = data.DataLoader(self.dataTest, batch_size=batch, shuffle=False)
        return {}, self.trainLoader, self.testLoader
"""

RUNNER = """
from DLNest.Common.RunnerBaseTorch import RunnerBaseTorch

import torch
import torch.nn as nn
from DigitsCNN import DigitsModel


class Runner(RunnerBaseTorch):
    def init(self, args : dict, datasetInfo : dict = None):
        self.model = DigitsModel(args)
        self.cost = nn.CrossEntropyLoss()

    def initLog(self):
        return {"loss" : [], "acc" : []}

    def initOptimizer(self):
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.01)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, 3)

    def runOneStep(self, data, log : dict, iter : int, epoch : int):
        self.model.zero_grad()
        x, y = data
        loss = self.cost(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        loss = self._reduceMean(loss)
        log["loss"].append(loss.detach().item())

    def visualize(self, epoch : int, iter : int, log : dict):
        pass

    def validationInit(self):
        self.totalCorrect = 0
        self.total = 0

    def validateABatch(self, data, iter : int):
        x, y = data
        with torch.no_grad():
            _, pred = torch.max(self.model(x), 1)
            correct = (pred == y).sum() / y.shape[0]
            self.totalCorrect += self._reduceMean(correct)
            self.total += 1

    def validationAnalyze(self, log : dict):
        log["acc"].append((self.totalCorrect / self.total).item())
"""

MODEL = """
import torch.nn as nn


class DigitsModel(nn.Module):
    def __init__(self, args : dict):
        super(DigitsModel, self).__init__()
        feats = args["model_config"]["feats"]
        self.conv = nn.Sequential(nn.Conv2d(1, feats[0], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.dense = nn.Sequential(nn.Linear(4 * 4 * feats[0], feats[1]), nn.ReLU(), nn.Linear(feats[1], 10))

    def forward(self, x):
        return self.dense(self.conv(x).flatten(1))
"""

GET_ACC = """
import torch

def experience(self):
    acc, total = 0, 0
    for _iter, data in enumerate(self.dataset.testLoader):
        x, y = data
        with torch.no_grad():
            _, pred = torch.max(self.runner.model(x), 1)
            acc += sum(pred == y).item()
            total += x.shape[0]
    print("correct count:", acc, "total count:", total, "accuracy:", acc / total)
"""

PASSWORD = "s3cret-mail-password"


def write_dlnest_project(
    root: Path,
    *,
    smtp_port: int,
    epochs: int = 3,
    mail: dict[str, Any] | None = None,
    extra_plugins: list[str] | None = None,
    args: dict[str, Any] | None = None,
) -> Path:
    """Write the project under `root`; returns its root config. `mail`: MailsNote's config
    over the default (localhost:`smtp_port`, user `dlnest@localhost`, `PASSWORD`)."""
    files = {
        "LifeCycle.py": LIFE_CYCLE,
        "Dataset/Dataset.py": DATASET,
        "Model/Runner.py": RUNNER,
        "Model/DigitsCNN.py": MODEL,
        "AnalyzeScripts/getAcc.py": GET_ACC,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text.lstrip())
    configs = {
        "root_config.json": {
            "save_root": "./Saves",
            "runner_name": "Runner",
            "dataset_name": "DigitsDataset",
            "life_cycle_name": "LifeCycle",
            "checkpoint_args": {
                "max_ckpt_in_slow_track": 0,
                "dilation_in_slow_track": 100,
                "max_ckpt_in_fast_track": 1,
                "max_ckpt_in_consistent_track": 1,
            },
            "root_file_path": "",
            "runner_file_path": "./Model/Runner.py",
            "dataset_file_path": "./Dataset/Dataset.py",
            "life_cycle_file_path": "./LifeCycle.py",
            "other_file_paths": [],
            "child_jsons": [
                "./common_config.json",
                "./model_config.json",
                "./dataset_config.json",
                "./plugins_config.json",
            ],
        },
        "common_config.json": {
            "other_file_paths": ["./Model/DigitsCNN.py"],
            "epochs": epochs,
            **(args or {}),
        },
        "model_config.json": {"model_config": {"feats": [8, 32]}},
        "dataset_config.json": {"dataset_config": {"train_samples": 600, "batch_size": 64}},
        "freq_config.json": {},
        "plugins_config.json": {
            "plugins": [
                "LogInit",
                "AutoTensorboardScalar",
                "SimpleCMDVisualize",
                "MailsNote",
                *(extra_plugins or []),
            ],
            "plugins_config": {
                "SimpleCMDVisualize": {
                    "stride": 5,
                    "keys": ["loss", "acc"],
                    "format": {"loss": "\t| {} : {:.6f}", "acc": "\t| {} : {:.6f}"},
                },
                "LogInit": {"level": "INFO"},
                "MailsNote": {
                    "enable_list": ["Aborting", "TrainFinish"],
                    "username": "dlnest@localhost",
                    "password": PASSWORD,
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "timeout_s": 5,
                    **(mail or {}),
                },
            },
        },
    }
    for name, value in configs.items():
        (root / name).write_text(json.dumps(value, indent=4))
    return root / "root_config.json"
