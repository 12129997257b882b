"""A pre-warmed process that forks one child per task, so a task starts in milliseconds.

A fresh interpreter pays about 2.5 s for `import torch` here, and the first forward/backward/
optimizer step another ~1.8 s of lazy initialisation, in every task. The zygote pays both once:
it imports torch and the runtime, runs one tiny warm-up step with one thread, and then forks
per launch request (measured facts: ../shared/reference/fast-launch.md).

Limits, on purpose:
- the zygote never touches CUDA (a forked CUDA context is unusable); each child sets
  CUDA_VISIBLE_DEVICES before anything initialises CUDA;
- the warm-up runs with one thread: a child forked after OpenMP started its pool hangs on its
  first multi-threaded op; the child restores the thread count;
- the zygote is single-threaded (no reaper thread, no signal handler): forking a process with
  other threads can deadlock the child on a lock held at fork time;
- user code is imported only in the child, after the fork, from its save package.

Protocol on stdin/stdout, one JSON object per line. In: {"id", "request", "output_path", "cwd",
"env"}. Out: {"ready": true} once warm; {"id", "pid", "started"} per launch; and
{"exited": pid, "code": n} when a child ends (n as a shell reports it: 128+signal if killed).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from typing import Any

import torch

from ..core.processes import start_time
from . import task_entry
from .output import line_buffered_stream

_REAP_INTERVAL_S = 0.2


def main() -> None:
    threads = torch.get_num_threads()
    _warm_up()
    _send({"ready": True})
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], _REAP_INTERVAL_S)
        if readable:
            line = sys.stdin.readline()
            if not line:
                break  # the service went away: stop taking requests; children live on
            _send(_launch(json.loads(line), threads))
        _reap()
    while _reap(block=True):
        pass


def _warm_up() -> None:
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.mse_loss(model(torch.randn(4, 8)), torch.zeros(4, 1))
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()


def _launch(message: dict[str, Any], threads: int) -> dict[str, Any]:
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # the child: become the task
        code = 1
        try:
            code = _become_task(message, threads)
        finally:
            os._exit(code)
    return {"id": message.get("id"), "pid": pid, "started": start_time(pid)}


def _become_task(message: dict[str, Any], threads: int) -> int:
    os.setsid()  # its own process group: `del` reaches everything the task starts
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    output = os.open(message["output_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    os.close(devnull)
    os.environ.update(message["env"])
    os.chdir(message["cwd"])
    torch.set_num_threads(threads)
    sys.stdout, sys.stderr = line_buffered_stream(1), line_buffered_stream(2)
    code = task_entry.main([json.dumps(message["request"])])
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _reap(block: bool = False) -> bool:
    """Report ended children; returns whether any child was reaped or remains (when blocking)."""
    reaped = False
    while True:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        code = os.waitstatus_to_exitcode(status)
        _send({"exited": pid, "code": 128 - code if code < 0 else code})
        reaped = True
        if block:
            return True


def _send(message: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # nobody listens any more; children are reaped all the same


if __name__ == "__main__":
    main()
