import torch
from torch import nn

from dlnest_jupyter import RunnerBaseTorch


class Runner(RunnerBaseTorch):
    def init(self, args: dict, datasetInfo: dict | None = None):
        self.model = nn.Linear(datasetInfo["in_features"], 1)  # assigning registers the module
        self.cost = nn.MSELoss()

    def initOptimizer(self):
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=self.args["model_config"]["lr"]
        )

    def initLog(self):
        return {"loss": [], "val_loss": []}

    def runOneStep(self, data, log: dict, iter: int, epoch: int):
        x, y = data
        self.optimizer.zero_grad()
        loss = self.cost(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        log["loss"].append(loss.item())

    def validationInit(self):
        self.total_loss, self.batches = 0.0, 0

    def validateABatch(self, data, iter: int):
        x, y = data
        with torch.no_grad():
            self.total_loss += self.cost(self.model(x), y).item()
        self.batches += 1

    def validationAnalyze(self, log: dict):
        log["val_loss"].append(self.total_loss / max(self.batches, 1))
