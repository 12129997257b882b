"""How a kernel's messages about one experiment change it: output, displays, result, its end.

`listen` follows a ready kernel's IOPub and shell channels and hands every message whose parent
is one of its experiments to `route_message`. An experiment succeeds only on an `ok`
execute_reply (shell) and the idle status after its output (IOPub), both: the idle status alone
also comes when a kernel is interrupted or restarted mid-run, and the reply alone may overtake the
last output.

One idle status never gets its reply: ipykernel sends none for a request whose handler a SIGINT
hit before the user's code ran ("KeyboardInterrupt caught in kernel": 5 in 40 interrupts sent
within 4 ms of the request, here). The kernel sends a reply before its idle status, so an
experiment whose reply has not come `REPLY_GRACE_S` after its idle status ends interrupted,
rather than running for ever with its reader waiting.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Protocol

from ...core.tasks import AnalyzerState, ExperimentState
from .experiments import Experiment, ExperimentBook

_AFTER_ERROR_S = 0.01
REPLY_GRACE_S = 2.0
NO_REPLY = "interrupted as it began: the kernel went idle without replying to it"


class Listened(Protocol):
    """What the host keeps per analyzer for routing (analyzer_record.AnalyzerRecord)."""

    pending: dict[str, Experiment]  # execute msg_id -> experiment, until it ends
    ends: dict[str, set[str]]  # msg_id -> which of "execute_reply" and "status" were seen
    client: Any  # the kernel's AsyncKernelClient
    state: AnalyzerState  # listened to while READY
    execution_state: str  # the kernel's last busy / idle


async def listen(book: ExperimentBook, analyzer: Listened) -> None:
    """Route the kernel's replies and IOPub messages to the experiments that caused them."""
    await asyncio.gather(_listen_to(book, analyzer, "iopub"), _listen_to(book, analyzer, "shell"))


async def _listen_to(book: ExperimentBook, analyzer: Listened, channel: str) -> None:
    """Ends when cancelled: every change of the analyzer's state away from READY cancels it."""
    pending, client = analyzer.pending, analyzer.client
    socket = (client.iopub_channel if channel == "iopub" else client.shell_channel).socket
    while analyzer.state is AnalyzerState.READY:
        try:
            # What get_iopub_msg / get_shell_msg do, less their poll for a timeout: that poll
            # (a poller, its future and a timer per message) was a third of this listener's
            # time on the server's loop, which every runExp's messages and HTTP requests share.
            _, frames = client.session.feed_identities(await socket.recv_multipart())
            message = client.session.deserialize(frames)
        except Exception:  # a closed channel when shutting down; a message failing its signature
            if socket.closed:  # nothing more will come
                return
            # An error that repeats at once (a context terminated under an open socket) must
            # not spin the loop every analyzer and (in the server) every request shares.
            await asyncio.sleep(_AFTER_ERROR_S)
            continue
        if message.get("msg_type") == "status":
            analyzer.execution_state = message["content"].get("execution_state", "idle")
        parent = message.get("parent_header", {}).get("msg_id", "")
        experiment = pending.get(parent)
        if experiment is not None:
            route_message(book, analyzer, experiment, message, parent)


def route_message(
    book: ExperimentBook,
    analyzer: Listened,
    experiment: Experiment,
    message: dict[str, Any],
    parent: str,
) -> None:
    kind, content = message["header"]["msg_type"], message["content"]
    if kind == "status" and content["execution_state"] == "busy":
        book.begin(experiment)  # the kernel took it up: queued behind another until now
    elif kind == "stream":
        book.append_text(experiment, content["text"])
    elif kind in ("display_data", "update_display_data"):
        book.add_display(experiment, {"data": content["data"], "metadata": content["metadata"]})
    elif kind == "execute_result":
        bundle = {"data": content["data"], "metadata": content["metadata"]}
        book.set_result(experiment, content["data"].get("text/plain"), bundle)
    elif kind == "error":
        book.finish(experiment, error_state(content), plain("\n".join(content["traceback"])))
    elif kind == "execute_reply" and content.get("status") != "ok":
        analyzer.pending.pop(parent, None)
        trace = plain("\n".join(content.get("traceback") or [])) or "the kernel aborted it"
        book.finish(experiment, error_state(content), trace)
    elif kind == "execute_reply" or (kind == "status" and content["execution_state"] == "idle"):
        seen = analyzer.ends.setdefault(parent, set())
        seen.add(kind)
        if len(seen) == 2:
            analyzer.pending.pop(parent, None)
            analyzer.ends.pop(parent, None)
            book.finish(experiment, ExperimentState.SUCCEEDED)
        elif kind == "status":
            asyncio.get_running_loop().call_later(
                REPLY_GRACE_S, _end_unreplied, book, analyzer, experiment, parent
            )


def _end_unreplied(
    book: ExperimentBook, analyzer: Listened, experiment: Experiment, parent: str
) -> None:
    if analyzer.pending.get(parent) is experiment and "execute_reply" not in analyzer.ends.get(
        parent, set()
    ):
        analyzer.pending.pop(parent, None)
        analyzer.ends.pop(parent, None)
        book.finish(experiment, ExperimentState.INTERRUPTED, NO_REPLY)


def error_state(content: dict[str, Any]) -> ExperimentState:
    """An error reply or message: interrupted for Ctrl-C (or an aborted request), else failed."""
    interrupted = content.get("ename") == "KeyboardInterrupt" or content.get("status") == "aborted"
    return ExperimentState.INTERRUPTED if interrupted else ExperimentState.FAILED


_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def plain(traceback_text: str) -> str:
    """IPython's tracebacks carry ANSI colours; a REST client wants text."""
    return _ANSI_COLOUR.sub("", traceback_text)
