from dlnest_jupyter import LifeCycleBase


class LifeCycle(LifeCycleBase):
    def BAll(self):
        self.maxAcc = 0.0

    def needValidation(self, epoch: int, logdict: dict, args: dict):
        return True

    def commandLineOutput(self, epoch: int, logdict: dict, args: dict):
        recent = logdict["loss"][-20:]
        print(
            f"Epoch #{epoch} finished: mean loss of the last {len(recent)} steps {sum(recent) / len(recent):.4f}"
        )

    def AValidation(self):
        print(f"  validation accuracy {self.runner.correct / max(self.runner.total, 1):.4f}")

    def needSaveModel(self, epoch: int, logdict: dict, args: dict):
        return True

    def holdThisCheckpoint(self, epoch: int, logdict: dict, args: dict):
        # Keep the best-accuracy checkpoint in the consistent track.
        if logdict["acc"] and logdict["acc"][-1] > self.maxAcc:
            self.maxAcc = logdict["acc"][-1]
            return True
        return False

    def AOneEpoch(self):
        # DLNest's template called optimizer.step() here; the scheduler was meant.
        self.runner.scheduler.step()

    def needContinueTrain(self, epoch: int, logdict: dict, args: dict):
        return epoch < args["epochs"]

    def getSaveDict(self):
        return {"max_acc": self.maxAcc}

    def loadSaveDict(self, saveDict):
        self.maxAcc = saveDict["max_acc"]
