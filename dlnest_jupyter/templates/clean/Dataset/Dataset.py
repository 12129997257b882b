import torch
from torch.utils.data import DataLoader, TensorDataset

from dlnest_jupyter import DatasetBase


class Dataset(DatasetBase):
    def init(self, args: dict):
        # Replace with your data. Return (info for the runner's init, train loader, val loader).
        config = args["dataset_config"]
        x = torch.randn(config["samples"], 4)
        y = x @ torch.tensor([1.0, -2.0, 3.0, 0.5]) + 0.1 * torch.randn(config["samples"])
        data = TensorDataset(x, y.unsqueeze(1))
        self.trainLoader = DataLoader(data, batch_size=config["batch_size"], shuffle=True)
        self.valLoader = DataLoader(data, batch_size=config["batch_size"])
        return {"in_features": 4}, self.trainLoader, self.valLoader
