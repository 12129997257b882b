"""Analyzer kernels: `host.py` starts, follows and stops them through a Jupyter kernel manager
(the server's; `private_host.py`'s own in embedded mode), keeping an `analyzer_record.py` for
each; `kernel_processes.py` is how a task's kernel is started and found in the manager,
`load_and_farewell.py` the code the host runs in a kernel to learn whether it loaded and to say
goodbye, `kernel_sessions.py` the session that names a kernel in JupyterLab's picker.
`experiments.py` keeps each experiment's output by offset, `messages.py` follows a kernel's
channels and routes its replies to the experiment that caused them, and `experiment_verbs.py` is
the runExp / exp / interrupt / attach verbs."""
