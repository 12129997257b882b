"""Send the whole process's stdout and stderr into the package's output file.

Redirection is at the file-descriptor level, so C extensions, CUDA/NCCL and child processes
(DataLoader workers) land in the file too; DLNest swapped only `sys.stdout` and lost those.
With `echo`, one pipe and a copying thread also show both streams, in order, on the original
stdout (as DLNest's echo did).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

_STREAMS = (1, 2)
_ECHO_JOIN_TIMEOUT_S = 5.0


@contextmanager
def capture_output(path: Path, echo: bool = False) -> Iterator[None]:
    """Append fd 1 and fd 2 to `path` for the duration of the block."""
    _flush_python_streams()
    saved = {fd: os.dup(fd) for fd in _STREAMS}
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    copier: threading.Thread | None = None
    try:
        if echo:
            read_fd, write_fd = os.pipe()
            copier = threading.Thread(
                target=_copy_pipe,
                args=(read_fd, (log_fd, saved[1])),
                name="dlnest-output",
                daemon=True,
            )
            copier.start()
            target = write_fd
        else:
            target = log_fd
        for fd in _STREAMS:
            os.dup2(target, fd)
        if echo:
            os.close(target)
        with _python_streams_on_fds():
            yield
    finally:
        _flush_python_streams()
        for fd, original in saved.items():
            os.dup2(original, fd)  # closes our pipe's write ends, so the copier sees EOF
            os.close(original)
        if copier is not None:
            copier.join(_ECHO_JOIN_TIMEOUT_S)  # a leftover child may still hold the pipe open
        os.close(log_fd)


def _copy_pipe(read_fd: int, targets: tuple[int, ...]) -> None:
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            for fd in targets:
                _write_all(fd, chunk)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except OSError:
            return  # a closed terminal must not stop the copy to the file


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(AttributeError, ValueError, OSError):
            stream.flush()


@contextmanager
def _python_streams_on_fds() -> Iterator[None]:
    # sys.stdout may not write to fd 1 at all (pytest's capture, an IPython kernel), and on a
    # file or pipe Python would block-buffer: print through fresh line-buffered streams instead.
    originals = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = line_buffered_stream(1), line_buffered_stream(2)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError, ValueError):
                stream.close()
        sys.stdout, sys.stderr = originals


def line_buffered_stream(fd: int) -> TextIO:
    return open(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
