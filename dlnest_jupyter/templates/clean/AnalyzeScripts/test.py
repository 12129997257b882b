def experience(self):
    """Print the loaded model and its last validation loss."""
    print(self.model.model)
    print("last val_loss:", self.log["val_loss"][-1] if self.log.get("val_loss") else None)
