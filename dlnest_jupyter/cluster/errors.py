"""The exceptions of a server's link to a Ray cluster, one class each, on both sides of the link.

The sidecar raises them, they cross the socket as themselves (pickled: a class of this module or
of `core/errors.py`, and its message, nothing of Ray), and the server's call raises the same
class again.

    DLNestError (core/errors.py)
    ├── LaunchError
    │   ├── LaunchDeferred           another server reserved that memory first
    │   │   └── ClusterUnavailable   no answer from the cluster now (also a ClusterError)
    │   │       └── AgentUnavailable a node's agent is restarting or did not answer in time
    │   └── LaunchUnknown            the agent got the launch and its answer never came
    └── ClusterError                 the cluster could not do what was asked (also an OSError)
        ├── ClusterUnavailable       (above)
        ├── NodeLost                 the node left the cluster
        ├── AnswerLost               the request went out and no answer came back
        └── OperationFailed          the operation failed in the sidecar; the message says why

A `ClusterError` is also an `OSError`: it is a failed exchange with other processes and
machines, and an executor's callers take an OSError for "this could not be done now" (`adopt`
is asked again later) or, from `start`, for a launch that failed (the task fails). A launch
outcome is no OSError: the scheduler catches `LaunchDeferred` and `LaunchUnknown` first.
"""

from __future__ import annotations

from ..core.errors import DLNestError, LaunchDeferred, LaunchUnknown

__all__ = [
    "AgentUnavailable",
    "AnswerLost",
    "ClusterError",
    "ClusterUnavailable",
    "LaunchDeferred",
    "LaunchUnknown",
    "NodeLost",
    "OperationFailed",
]


class ClusterError(DLNestError, OSError):
    """The cluster could not do what was asked (a task's cards on several nodes, say); the
    base of every failure of the link."""


class ClusterUnavailable(LaunchDeferred, ClusterError):
    """No answer from the cluster now: a launch is queued again, a poll says "still running"."""


class AgentUnavailable(ClusterUnavailable):
    """A node's agent is restarting or did not answer in time."""


class NodeLost(ClusterError):
    """The node left the cluster."""


class AnswerLost(ClusterError):
    """The request went out but no answer came: whether it took effect is not known."""


class OperationFailed(ClusterError):
    """The operation failed in the sidecar (Ray or a node's agent refused it, or the sidecar has
    no such operation); the message says why."""


# What may cross the link as an error: anything else raised in the sidecar crosses as an
# OperationFailed with its message.
CROSSES = (ClusterError, LaunchDeferred, LaunchUnknown)
