"""A scripted Ray sidecar, no Ray: `SidecarClient(..., command=[python, this file])` starts it as
it would the real one (the socket's descriptor, the address and the launch mode as arguments),
and it answers through the real `protocol.serve`, with handlers whose answers the test chooses.

The address scripts it: "refuse" says `failed` instead of `ready`; anything else serves.
- VIEW answers who it is (address, mode, pid);
- START(outcome) raises the error named by `outcome` ("lost", "unknown", ...), or sleeps
  `outcome` seconds and answers "started";
- EXIT_CODE never answers;
- STOP has no handler here; and `_forget`, though a method of the ops, is no operation.
"""

from __future__ import annotations

import os
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's dlnest_jupyter

from dlnest_jupyter.cluster import errors, protocol
from dlnest_jupyter.cluster.protocol import Op

OUTCOMES: dict[str, type[Exception]] = {
    "lost": errors.NodeLost,
    "deferred": errors.LaunchDeferred,
    "unknown": errors.LaunchUnknown,
    "unavailable": errors.AgentUnavailable,
    "boom": RuntimeError,  # not ours: crosses as OperationFailed
}


class FakeOps:
    def __init__(self, address: str, mode: str) -> None:
        self.address, self.mode = address, mode

    def view(self) -> dict[str, Any]:
        return {"address": self.address, "mode": self.mode, "pid": os.getpid()}

    def start(self, outcome: str) -> str:
        if outcome in OUTCOMES:
            raise OUTCOMES[outcome](f"scripted {outcome}")
        time.sleep(float(outcome))
        return "started"

    def exit_code(self) -> None:
        time.sleep(3600)

    def _forget(self) -> None:
        raise AssertionError("a private method was called")


def main(fd: int, address: str, mode: str) -> None:
    connection = Connection(fd)
    if address == "refuse":
        connection.send((protocol.FAILED, "no cluster at refuse"))
        return
    connection.send((protocol.READY, "fake"))
    ops = FakeOps(address, mode)
    protocol.serve(
        connection, {Op.VIEW: ops.view, Op.START: ops.start, Op.EXIT_CODE: ops.exit_code}
    )
    os._exit(0)  # a thread may still sleep in exit_code


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
