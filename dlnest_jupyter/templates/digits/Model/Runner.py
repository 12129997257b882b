import torch
from DigitsNet import (
    DigitsNet,  # a sibling listed in other_file_paths, imported from the package copy
)
from torch import nn

from dlnest_jupyter import RunnerBaseTorch


class Runner(RunnerBaseTorch):
    def init(self, args: dict, datasetInfo: dict | None = None):
        config = args["model_config"]
        # Assigning a module registers it: it moves to the task's device and is checkpointed.
        self.model = DigitsNet(config["channels"], config["hidden"], datasetInfo["num_classes"])
        self.cost = nn.CrossEntropyLoss()

    def initOptimizer(self):
        config = self.args["model_config"]
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config["lr"])
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=config["lr_step_epochs"], gamma=config["lr_gamma"]
        )

    def initLog(self):
        return {"loss": [], "acc": [], "lr": []}

    def runOneStep(self, data, log: dict, iter: int, epoch: int):
        self.model.train()
        x, y = data
        self.optimizer.zero_grad()
        loss = self.cost(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        log["loss"].append(self._reduceMean(loss.detach()).item())

    def validationInit(self):
        self.model.eval()
        self.correct = 0
        self.total = 0

    def validateABatch(self, data, iter: int):
        x, y = data
        with torch.no_grad():
            pred = self.model(x).argmax(dim=1)
        self.correct += (pred == y).sum().item()
        self.total += y.numel()

    def validationAnalyze(self, log: dict):
        log["acc"].append(self.correct / max(self.total, 1))
        log["lr"].append(self.optimizer.param_groups[0]["lr"])
