"""Analyzer kernels: `host.py` starts, follows and stops them through a Jupyter kernel manager
(the server's; `private_host.py`'s own in embedded mode), `experiments.py` keeps each
experiment's output by offset, `messages.py` routes a kernel's replies to the experiment that
caused them, and `experiment_verbs.py` is the runExp / exp / interrupt / attach verbs."""
