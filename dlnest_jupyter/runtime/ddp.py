"""DistributedDataParallel: one process per placed device, started and awaited by the task process.

Each rank is a fresh interpreter (the spawn start method: forking a process that may already
hold CUDA state or threads is unsafe), joins a process group (nccl on GPUs, gloo on the CPU, so
DDP is testable on a CPU-only machine), trains its shard, and writes `_output_<rank>.txt`;
rank 0 also echoes into the task's `_output.txt`. Only rank 0 writes checkpoints and metrics.
If any rank fails, the others are terminated and the task fails (DLNest leaked them).
"""

from __future__ import annotations

import os
import socket

import torch.distributed as dist
import torch.multiprocessing as mp

from ..core.errors import EXIT_OUT_OF_MEMORY
from ..core.package import PROGRESS_FILE, RANK_PROGRESS, SavePackage
from .gpu_memory import gpu_memory, out_of_memory
from .loop import TrainingLoop
from .output import capture_output
from .progress import ProgressFile
from .session import open_session, open_writer, run_args
from .train_request import TrainRequest


def launch_ranks(package: SavePackage, request: TrainRequest) -> BaseException | None:
    """Run one rank per device in `request`; return what failed, or None."""
    port = _free_port()
    try:
        mp.start_processes(  # type: ignore[attr-defined,no-untyped-call]
            _rank_main,
            args=(str(package.path), request, port),
            nprocs=len(request.device_ids),
            join=True,
            start_method="spawn",
        )
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:  # type: ignore[attr-defined]
        return exc
    return None


def _rank_main(rank: int, package_path: str, request: TrainRequest, port: int) -> None:
    world_size = len(request.device_ids)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    package = SavePackage.open(package_path)
    with capture_output(package.output_path(rank), echo=rank == 0):
        session = open_session(
            package,
            request.device_ids,
            request.checkpoint_id,
            ddp=True,
            rank=rank,
            args=run_args(package, request.checkpoint_id, request.overrides),
            pretend_gpus=request.pretend_gpus,
        )
        on_gpu = session.status.device.type == "cuda"
        if on_gpu:
            import torch

            torch.cuda.set_device(session.status.device)
        dist.init_process_group("nccl" if on_gpu else "gloo", rank=rank, world_size=world_size)
        writer = open_writer(session, request.overrides) if rank == 0 else None
        loop = TrainingLoop(session, writer)
        # Every rank reports its own card's memory; rank 0 its progress as well.
        name = PROGRESS_FILE if rank == 0 else RANK_PROGRESS.format(rank=rank)
        memory = gpu_memory(session)
        progress = loop.progress = ProgressFile(
            package.path, memory=memory.figures, name=name, ranks=world_size
        )
        try:
            if request.memory_cap_mb:  # the guard: each rank caps its own card
                memory.guard(request.memory_cap_mb)
            error = loop.run()
        except BaseException as exc:
            error = exc
        finally:
            progress.flush()  # its card's peak, however it ended
            dist.destroy_process_group()
    if error is not None:  # out of GPU memory says so by its code (train.py reads it)
        raise SystemExit(EXIT_OUT_OF_MEMORY if out_of_memory(error) else 1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
