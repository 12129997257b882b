def experience(self):
    """The model's layers and parameter count."""
    model = self.runner.model
    print(model)
    count = sum(p.numel() for p in model.parameters())
    print(f"{count:,} parameters; trained for {self.log and len(self.log.get('acc', []))} epochs")
    return count
