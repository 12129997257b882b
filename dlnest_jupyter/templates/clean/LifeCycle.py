from dlnest_jupyter import LifeCycleBase


class LifeCycle(LifeCycleBase):
    def needValidation(self, epoch: int, logdict: dict, args: dict):
        return True

    def commandLineOutput(self, epoch: int, logdict: dict, args: dict):
        print(f"Epoch #{epoch} finished: last loss {logdict['loss'][-1]:.4f}")

    def needSaveModel(self, epoch: int, logdict: dict, args: dict):
        return True

    def holdThisCheckpoint(self, epoch: int, logdict: dict, args: dict):
        return False

    def needContinueTrain(self, epoch: int, logdict: dict, args: dict):
        return epoch < args["epochs"]
