"""The one exception tree of dlnest-jupyter.

    DLNestError                    anything we raise on purpose; the message names the culprit
    ├── ConfigError                a config file, key or user code file is wrong (bad input)
    │   ├── UserCodeError          a user class is missing, or not a subclass of our base
    │   └── PluginConfigError      a plugin name is unknown, or a plugin file's config unreadable
    ├── PackageError               a save package is missing, incomplete or unreadable
    │   └── CheckpointNotFoundError    a checkpoint id the package does not hold
    ├── DiskFullError              no space left (or quota exceeded) where something was written
    ├── AnalysisScriptError        an analysis script is missing or has no `experience`
    ├── RequestError               a request is malformed: a field, parameter or body is wrong
    │   ├── ForbiddenPathError     it names a path outside the folders the caller may touch
    │   ├── BodyTooLargeError      its body is larger than accepted
    │   └── RouteNotFoundError     no route has this path
    │       └── MethodNotAllowedError  the path has routes, none for this method
    └── TaskError                  a task request cannot be honoured
        ├── TaskNotFoundError      no task has this id
        │   └── ExperimentNotFoundError    an analyzer has no experiment with this id
        ├── TaskStateError         the task's state forbids it (deleting a finished task...)
        ├── NotAnAnalyzerError     an experiment asked of a task that is not a loaded analyzer
        └── PackageBusyError       another queued or running task uses this save package

Front ends map these to exit codes and HTTP statuses in one table each (`service/api/dispatcher.py`
has the HTTP one, which both the server and in-process clients go through); nothing else should
need to catch more than `DLNestError`. The launch outcomes are the scheduler's own business: an
executor raises them, the scheduler catches them, and no request ever sees one. The link to a Ray
cluster has its exceptions in `cluster/errors.py`, under `DLNestError` too.
"""

from __future__ import annotations

import errno
from pathlib import Path


class DLNestError(Exception):
    """Base of every error we raise on purpose."""


class ConfigError(DLNestError):
    """A config file, key or code file named by a config is wrong."""

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        key: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.file = Path(file) if file is not None else None
        self.key = key
        self.line = line
        self.column = column
        where = ""
        if self.file is not None:
            where = str(self.file)
            if line is not None:
                where += f":{line}:{column}" if column is not None else f":{line}"
            where += ": "
        super().__init__(f"{where}{message}")


class UserCodeError(ConfigError):
    """A user class cannot be found or does not derive from the expected base."""


class PluginConfigError(ConfigError):
    """A plugin name is unknown, or a plugin file's `_NAME`, `_config` or `_defaultKeys` cannot
    be read without running it (core/plugin_configs.py)."""


class PackageError(DLNestError):
    """A save package is missing, incomplete or unreadable."""

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class CheckpointNotFoundError(PackageError):
    """The package holds no checkpoint with the requested id."""

    def __init__(self, path: Path | str, checkpoint_id: int, available: list[int]) -> None:
        self.checkpoint_id = checkpoint_id
        self.available = available
        held = ", ".join(map(str, available)) if available else "none"
        super().__init__(
            f"no checkpoint {checkpoint_id} in this package (checkpoints held: {held})", path=path
        )


class DiskFullError(DLNestError):
    """A write failed for want of space (ENOSPC) or quota (EDQUOT); `path` is what was written."""

    def __init__(
        self, path: Path | str, what: str = "", reason: str = "no space left on device"
    ) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}{f' ({what})' if what else ''}")


# A training process that stopped because its disk filled up exits with this (sysexits' EX_IOERR),
# so the service can say so even when the disk was too full for the process to write why.
EXIT_DISK_FULL = 74
# One that ran out of GPU memory (CUDA's allocator, or the guard's cap) exits with this (sysexits'
# EX_TEMPFAIL: with more memory reserved it may well succeed), its last line saying how much.
EXIT_OUT_OF_MEMORY = 75
_DISK_FULL_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def disk_full(error: BaseException | None) -> str | None:
    """ "no space left on device" (or the quota's reason) when `error`, or an error it was raised
    from or while handling, is ENOSPC or EDQUOT; None otherwise.

    The chain matters: torch.save reports a failed write as a RuntimeError ("unexpected pos")
    whose context is the OSError that says why.
    """
    for link in _chain(error):
        if isinstance(link, DiskFullError):
            return link.reason
        if isinstance(link, OSError) and link.errno in _DISK_FULL_ERRNOS:
            return _DISK_FULL_ERRNOS[link.errno]
    return None


def as_disk_full(error: BaseException, path: Path | str, what: str = "") -> DiskFullError | None:
    """`error` as a DiskFullError naming `path`, if it is one (`disk_full`); None otherwise.

    A DiskFullError anywhere in the chain is returned as it is: it names the file exactly (a
    print that failed on the same full disk while reporting it must not hide which).
    """
    named = next((link for link in _chain(error) if isinstance(link, DiskFullError)), None)
    if named is not None:
        return named
    reason = disk_full(error)
    return DiskFullError(path, what, reason) if reason is not None else None


def _chain(error: BaseException | None) -> list[BaseException]:
    links: list[BaseException] = []
    while error is not None and all(error is not seen for seen in links):
        links.append(error)
        error = error.__cause__ or error.__context__
    return links


class AnalysisScriptError(DLNestError):
    """An analysis script is missing or does not define `experience(self)`."""

    def __init__(self, message: str, *, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {message}")


class RequestError(DLNestError):
    """A request body, field or parameter is malformed; the message names it."""


class ForbiddenPathError(RequestError):
    """A request names a path outside the folders this server may touch."""


class BodyTooLargeError(RequestError):
    """A request body is larger than the server accepts."""


class RouteNotFoundError(RequestError):
    """No route has this path."""


class MethodNotAllowedError(RouteNotFoundError):
    """The path has routes, but none for this method."""


class LaunchError(DLNestError):
    """A placed task's launch did not end in a process we know of; not a failure of the task.
    Any other exception from an executor's `start` (an OSError) fails the task."""


class LaunchDeferred(LaunchError):
    """Nothing was started, and the task may start later: it is queued again, not failed
    (another server on the cluster reserved that memory first; the cluster did not answer)."""


class LaunchUnknown(LaunchError):
    """The launch went out and its answer never came: the task may be running. It stays
    `starting` until `adopt` finds it, or finds that nothing was launched (then it is queued
    again)."""


class TaskError(DLNestError):
    """A task request cannot be honoured (bad input about tasks)."""


class TaskNotFoundError(TaskError):
    def __init__(self, task_id: int | str) -> None:
        self.task_id = task_id  # a str: what a request gave where an id belongs
        super().__init__(
            f"no task with id {task_id if isinstance(task_id, int) else repr(task_id)}"
        )


class ExperimentNotFoundError(TaskNotFoundError):
    def __init__(self, task_id: int, experiment_id: int | str) -> None:
        shown = experiment_id if isinstance(experiment_id, int) else repr(experiment_id)
        TaskError.__init__(self, f"analyzer task {task_id} has no experiment {shown}")
        self.task_id, self.experiment_id = task_id, experiment_id


class NotAnAnalyzerError(TaskError):
    """Experiments run only in an analyzer whose model is loaded."""


class TaskStateError(TaskError):
    def __init__(self, task_id: int, state: str, wanted: str, ended: bool = False) -> None:
        """`ended`: `state` is an end (a second `del`, a stop of a finished run)."""
        self.task_id, self.state, self.wanted = task_id, state, wanted
        super().__init__(
            f"task {task_id} has already ended ({state}); nothing to stop"
            if ended
            else f"task {task_id} is {state}; it cannot become {wanted}"
        )


class PackageBusyError(TaskError):
    """Another queued or running task already uses this save package."""


class SweepNotFoundError(TaskError):
    def __init__(self, sweep_id: int | str) -> None:
        self.sweep_id = sweep_id  # a str: what a request gave where an id belongs
        shown = sweep_id if isinstance(sweep_id, int) else repr(sweep_id)
        super().__init__(f"no sweep with id {shown}")


class SweepStateError(TaskError):
    """A sweep is not running: it cannot end again, nor queue trials."""

    def __init__(self, sweep_id: int, state: str, wanted: str, refused: str | None = None) -> None:
        self.sweep_id, self.state, self.wanted = sweep_id, state, wanted
        # A sweep is running or has ended: refused, it has ended.
        super().__init__(
            f"sweep {sweep_id} has already ended ({state}); {refused or 'nothing to stop'}"
        )
