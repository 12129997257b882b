"""A pre-warmed process that forks one child per task, so a task starts in milliseconds.

A fresh interpreter pays about 2.5 s for `import torch` here, and the first forward/backward/
optimizer step another ~1.8 s of lazy initialisation, in every task. The zygote pays both once:
it imports torch and the runtime, runs one tiny warm-up step with one thread, and then forks
per launch request (measured facts: ../shared/reference/fast-launch.md).

Forking a process that holds torch costs about 8 ms here (its page tables are copied), so the
zygote forks ahead: a spare child waits on a pipe of its own, a request goes down that pipe,
and the next spare is forked once no request has come for `_SPARE_AFTER_S` (a burst of
launches forks each at once rather than queue behind a spare's fork).

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
from dataclasses import dataclass
from typing import Any

import torch

from ..core.processes import start_time
from . import task_entry
from .output import line_buffered_stream

_REAP_INTERVAL_S = 0.2
_SPARE_AFTER_S = 0.05


@dataclass
class _Spare:
    """A forked child waiting for its request on `pipe_fd` (the zygote's writing end)."""

    pid: int
    pipe_fd: int


def main() -> None:
    threads = torch.get_num_threads()
    _warm_up()
    _send({"ready": True})
    spare: _Spare | None = None
    while True:
        wait_s = _REAP_INTERVAL_S if spare is not None else _SPARE_AFTER_S
        readable, _, _ = select.select([sys.stdin], [], [], wait_s)
        if readable:
            line = sys.stdin.readline()
            if not line:
                break  # the service went away: stop taking requests; children live on
            message = json.loads(line)
            reply, spare = _hand_to(spare, message), None
            _send(reply or _launch(message, threads))
        elif spare is None:
            spare = _fork_spare(threads)
        if _reap(spare.pid if spare is not None else None):
            spare = None  # it died waiting (killed by someone): the next one is forked anew
    if spare is not None:
        os.close(spare.pipe_fd)  # it reads end of file and leaves quietly
    _wait_for_children()


def _warm_up() -> None:
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.mse_loss(model(torch.randn(4, 8)), torch.zeros(4, 1))
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()


def _fork_spare(threads: int) -> _Spare:
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # the spare: wait for a request, then become its task
        code = 0
        try:
            os.close(write_fd)
            with os.fdopen(read_fd, "r", encoding="utf-8") as pipe:
                line = pipe.readline()
            if line:  # else the zygote is closing: leave without a task
                code = 1
                code = _become_task(json.loads(line), threads)
        finally:
            os._exit(code)
    os.close(read_fd)
    return _Spare(pid, write_fd)


def _hand_to(spare: _Spare | None, message: dict[str, Any]) -> dict[str, Any] | None:
    """Give `message` to the waiting spare: the launch's reply, or None if there is no spare
    or it cannot take it (it has died)."""
    if spare is None:
        return None
    try:
        with os.fdopen(spare.pipe_fd, "w", encoding="utf-8") as pipe:
            pipe.write(json.dumps(message) + "\n")
    except OSError:  # BrokenPipeError: it died; it is reaped like any child
        return None
    return {"id": message.get("id"), "pid": spare.pid, "started": start_time(spare.pid)}


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


def _reap(spare_pid: int | None) -> bool:
    """Report ended children, but for the spare (it never was a task); whether it ended."""
    spare_ended = False
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return spare_ended
        if pid == 0:
            return spare_ended
        if pid == spare_pid:
            spare_ended = True
        else:
            _report_exit(pid, status)


def _wait_for_children() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        _report_exit(pid, status)


def _report_exit(pid: int, status: int) -> None:
    code = os.waitstatus_to_exitcode(status)
    _send({"exited": pid, "code": 128 - code if code < 0 else code})


def _send(message: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # nobody listens any more; children are reaped all the same


if __name__ == "__main__":
    main()
