"""Run one training task to completion inside this process.

`prepare` does everything that can fail because of bad input (open the package, import the
user's classes, load the checkpoint) so a caller can tell bad input from a failed run; `train`
runs the loop with the process's output going into the package, records the launch in
`_task.json`, and returns the exit code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..core.checkpoints import TrackLimits
from ..core.continuation import EPOCHS_KEY, changed_keys
from ..core.errors import EXIT_DISK_FULL, EXIT_OUT_OF_MEMORY, as_disk_full
from ..core.package import SavePackage
from .checkpoint_io import CheckpointWriter
from .ddp import launch_ranks
from .gpu_memory import GpuMemory, gpu_memory, out_of_memory
from .lifecycle import StopRequested
from .loop import TrainingLoop
from .output import capture_output
from .progress import ProgressFile
from .session import Session, open_session, open_writer, print_warnings, run_args
from .train_request import TrainRequest

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    130,
)  # and EXIT_DISK_FULL, EXIT_OUT_OF_MEMORY


def prepare(package: SavePackage, request: TrainRequest, rank: int = 0) -> Session:
    """Open a session for `request`; raises DLNestError on bad input."""
    args = run_args(package, request.checkpoint_id, request.overrides)
    TrackLimits.from_args(args, package.path / "args.json")
    return open_session(
        package,
        request.device_ids,
        request.checkpoint_id,
        ddp=request.ddp,
        rank=rank,
        args=args,
        pretend_gpus=request.pretend_gpus,
    )


def train(session: Session, request: TrainRequest) -> int:
    """Train to the end; returns the process exit code (0 finished, 1 aborted, 130 interrupted).

    Under DDP this process only launches and waits for the ranks (runtime.ddp).
    """
    package = session.package
    with (
        capture_output(package.output_path(), echo=request.echo),
        _inside(package),
        _sigterm_exits(),
    ):
        print_warnings(session)
        record = _launch_record(session, request)
        if request.overrides:  # kept with the branch this run forks (open_writer)
            before = package.args_for(session.checkpoint_id)
            record["overrides"] = {
                "freq_path": request.freq_path,
                "changed": changed_keys(before, session.args),
            }
        launch = package.record_launch(record)
        memory: GpuMemory | None = None
        if request.ddp:
            package.clear_progress()  # every rank's, before any rank writes its own
            error = launch_ranks(package, request)
        else:
            memory = gpu_memory(session)
            writer = open_writer(session, request.overrides)
            error = _run_loop(session, writer, launch, memory, request.memory_cap_mb)
        exit_code = _exit_code(error)
        if exit_code == EXIT_OUT_OF_MEMORY:  # the service reads how much from this last line
            # A DDP run's ranks left theirs in their progress files, merged by the package.
            peaks = memory.figures() if memory is not None else package.progress()
            _say_last(f"dlnest: error: {_out_of_memory_text(peaks, request.reserved_mb)}")
        full = (  # a deletion or Ctrl+C keeps its own code, whatever it interrupted
            as_disk_full(error, package.path, "while training")
            if error is not None and exit_code == EXIT_FAILED
            else None
        )
        if full is not None:
            exit_code, error = EXIT_DISK_FULL, full
            _say_last(f"dlnest: error: {full}")
        try:
            package.update_launch(
                launch,
                ended_at=time.time(),
                exit_code=exit_code,
                error=_one_line(error),
                head=package.state().head,
            )
        except OSError as exc:  # the disk filled up (during the run, or since it ended)
            late = as_disk_full(exc, package.path, "recording how the run ended")
            if late is None:
                raise
            if full is None:  # else the line above already said which file did not fit
                _say_last(f"dlnest: error: {late}")
            exit_code = EXIT_DISK_FULL
    return exit_code


def _say_last(line: str) -> None:
    """The output's last line is what the service shows as the task's error; on a full disk it
    may not fit, and then the exit code says it for us."""
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr, flush=True)


def _run_loop(
    session: Session,
    writer: CheckpointWriter,
    launch: int,
    memory: GpuMemory,
    cap_mb: Mapping[int, int] | None,
) -> BaseException | None:
    loop = TrainingLoop(session, writer, launch)
    epochs = session.args.get(EPOCHS_KEY)
    progress = loop.progress = ProgressFile(
        session.package.path,
        epochs=epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None,
        memory=memory.figures,
    )
    try:
        if cap_mb:
            memory.guard(cap_mb)
        return loop.run()
    except BaseException as exc:  # the life cycle's own AAll or trainAborting failed
        with contextlib.suppress(OSError):  # the output's disk may be the one that is full
            if isinstance(exc, StopRequested):  # asked to: not a crash, so no traceback
                print(f"dlnest: {exc}", file=sys.stderr, flush=True)
            else:
                traceback.print_exception(exc)
        return exc
    finally:
        progress.flush()  # its last figures, its memory's peak too, however it ended


def _out_of_memory_text(progress: Mapping[str, Any], reserved_mb: Mapping[int, int] | None) -> str:
    """`out of GPU memory (peak 9,638 MiB, reserved 6,000 MiB)`, over the run's cards."""
    peaks = progress.get("peak_memory_mb") or {}
    said = [f"peak {sum(peaks.values()):,} MiB"] if peaks else []
    if reserved_mb:
        said.append(f"reserved {sum(reserved_mb.values()):,} MiB")
    return "out of GPU memory" + (f" ({', '.join(said)})" if said else "")


def _exit_code(error: BaseException | None) -> int:
    if error is None:
        return EXIT_OK
    if out_of_memory(error) or getattr(error, "exit_code", None) == EXIT_OUT_OF_MEMORY:
        return EXIT_OUT_OF_MEMORY  # this process's, or a DDP rank's (its exit code says)
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, SystemExit) and isinstance(error.code, int) and error.code != 0:
        return error.code
    return EXIT_FAILED


def _launch_record(session: Session, request: TrainRequest) -> dict[str, Any]:
    return {
        "kind": request.kind,
        "devices": list(request.device_ids),
        "env": session.status.env,
        "ddp": request.ddp,
        "memory_mb": request.memory_mb,
        "checkpoint_id": session.checkpoint_id,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "argv": sys.argv,
        "started_at": time.time(),
        "ended_at": None,
        "exit_code": None,
        "error": None,
    }


def _one_line(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, StopRequested):
        return str(error)
    return "".join(traceback.format_exception_only(error)).strip().splitlines()[-1]


@contextmanager
def _inside(package: SavePackage) -> Iterator[None]:
    # DLNest ran user code with the package as working directory; relative paths rely on it.
    previous = os.getcwd()
    os.chdir(package.path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Turn SIGTERM (`del`) into SystemExit, so trainAborting and the pending save still run."""

    def handler(signum: int, frame: Any) -> None:
        raise StopRequested(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_training(package: SavePackage, request: TrainRequest) -> int:
    """prepare + train, for callers that treat bad input like any other failure."""
    return train(prepare(package, request), request)
