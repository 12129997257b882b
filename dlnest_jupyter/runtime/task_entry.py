"""`python -m dlnest_jupyter.runtime.task_entry REQUEST_JSON`: one scheduled task, start to end.

The service's executor starts this in a new session with stdout and stderr already appended to
the package's `_output.txt`. Exit codes as the `dlnest` command's: 0 done, 1 aborted, 2 bad
input (the message is the last line of the output), 74 the disk filled up (EXIT_DISK_FULL),
130 interrupted, 143 deleted (SIGTERM).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from ..core.errors import DLNestError
from ..core.package import SavePackage
from .train import EXIT_BAD_INPUT, prepare, train
from .train_request import TrainRequest


def main(argv: Sequence[str] | None = None) -> int:
    raw = json.loads((sys.argv[1:] if argv is None else argv)[0])
    request = TrainRequest(
        kind=raw["kind"],
        device_ids=tuple(raw["device_ids"]),
        checkpoint_id=raw.get("checkpoint_id"),
        ddp=bool(raw.get("ddp")),
        memory_mb=raw.get("memory_mb"),
        overrides=raw.get("overrides"),
        freq_path=raw.get("freq_path"),
        pretend_gpus=bool(raw.get("pretend_gpus")),
        reserved_mb=_by_card(raw.get("reserved_mb")),
        memory_cap_mb=_by_card(raw.get("memory_cap_mb")),
    )
    try:
        package = SavePackage.open(raw["package_path"])
        session = prepare(package, request)
    except DLNestError as exc:
        print(f"dlnest: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    return train(session, request)


def _by_card(raw: dict[str, int] | None) -> dict[int, int] | None:
    return {int(card): int(mb) for card, mb in raw.items()} if raw else None


if __name__ == "__main__":
    sys.exit(main())
