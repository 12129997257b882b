"""Sweeps: a grid or a search over config values, run as ordinary tasks on the queue.

`verbs.py` answers the API (make, read, stop a sweep); `driver.py` is the scheduling server's
part of each pass (follow the trials' metrics, prune, tell, queue the next trials); `engines.py`
suggests values and decides pruning (Optuna, or a plain walk over a grid without it).
"""
