"""How long each side waits, in one place: the sidecar for Ray and the node agents, the server
for the sidecar. The server always waits longer than the sidecar does for the same call, so a
slow agent is reported as slow rather than taken for a lost link (which ends the sidecar)."""

from __future__ import annotations

RESERVE_S = 2.0  # a reservation pending this long was taken by someone else (or its node left)
AGENT_START_S = 45.0  # a launch may wait for the node's agent and zygote to start (the first time)
AGENT_POLL_S = 10.0  # an agent that started a task answers a poll in milliseconds
AGENT_STOP_S = 45.0  # the task's grace period, then SIGKILL, then the group is gone
VIEW_S = 5.0  # a view is two reads from the head (milliseconds)
_MARGIN_S = 15.0

# The server's waits for the sidecar's answer to each call.
START_S = RESERVE_S + AGENT_START_S + _MARGIN_S
POLL_S = AGENT_POLL_S + _MARGIN_S
STOP_S = AGENT_STOP_S + _MARGIN_S
ADOPT_S = AGENT_START_S + _MARGIN_S
RESERVE_CALL_S = RESERVE_S + _MARGIN_S
RELEASE_S = _MARGIN_S
QUIET_AFTER_TIMEOUT_S = 30.0  # a node whose agent did not answer a poll is left this long
QUIET_AFTER_REFUSAL_S = 2.0  # one whose agent failed a poll at once (restarting, node leaving)


def quiet_after(poll_s: float) -> float:
    """How long a node whose agent failed a poll is not polled again. Long after a poll that
    waited out its time: asking again would hold the scheduler as long. Briefly after one that
    failed at once (the agent restarting, or its node leaving the cluster): the next poll finds
    which, and a lost node's tasks were otherwise said to fail 30 s late."""
    return QUIET_AFTER_TIMEOUT_S if poll_s >= AGENT_POLL_S / 2 else QUIET_AFTER_REFUSAL_S
