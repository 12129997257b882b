import torch


def experience(self):
    """Validation accuracy of the loaded checkpoint."""
    model = self.runner.model
    device = next(model.parameters()).device
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in self.dataset.valLoader:
            pred = model(x.to(device)).argmax(dim=1).cpu()
            correct += (pred == y).sum().item()
            total += y.numel()
    accuracy = correct / total
    print(f"correct {correct} of {total}: accuracy {accuracy:.4f}")
    return accuracy
