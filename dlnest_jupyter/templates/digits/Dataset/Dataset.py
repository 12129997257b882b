"""scikit-learn's 8x8 handwritten digits: 1,797 images that ship inside the package (no download)."""

import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from dlnest_jupyter import DatasetBase


class DigitsDataset(DatasetBase):
    def init(self, args: dict):
        config = args["dataset_config"]
        images, labels = load_digits(return_X_y=True)
        x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
        y = torch.tensor(labels, dtype=torch.long)

        # The split depends on split_seed only, never on the run's seed: every run of this
        # project validates on the same images.
        order = torch.randperm(
            len(y), generator=torch.Generator().manual_seed(config["split_seed"])
        )
        n_val = int(len(y) * config["val_fraction"])
        val_idx, train_idx = order[:n_val], order[n_val:]
        self.trainSet = TensorDataset(x[train_idx], y[train_idx])
        self.valSet = TensorDataset(x[val_idx], y[val_idx])

        batch_size = config["batch_size"]
        train_sampler = self.getSampler(self.trainSet)  # a DistributedSampler under DDP
        self.trainLoader = DataLoader(
            self.trainSet,
            batch_size=batch_size,
            shuffle=train_sampler is None,
            sampler=train_sampler,
        )
        self.valLoader = DataLoader(self.valSet, batch_size=256, shuffle=False)
        return {"num_classes": 10}, self.trainLoader, self.valLoader
