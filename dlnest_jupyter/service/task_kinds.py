"""The task kinds, as a table: what each one's request holds, how it is queued, placed and started.

Everything that differs between train, continue and analyze is a column here, and the rest of
the code asks the table instead of comparing kind names:

- `fields`: the `POST tasks` body besides `kind` (DESIGN.md section 6), checked by the API;
- `paths`: which of those fields name paths (confined to the caller's roots by the API), and
  whether the path must already be a folder;
- `submit`: the function of `submissions.py` that checks the request and queues it. What it stores (the task's
  spec) is that verb's: train stores its config paths, continue and analyze the package and the
  resolved checkpoint id, analyze its scripts folder; all store `cpu`, `multi_gpu` and `ddp`,
  which are what placement reads (`TaskRecord.demand`), so analyze (one card at most) stores
  them false;
- `runner` (core's `RUNNERS`): what runs it. A training process comes from the service's executor and writes the
  package's output; an analyzer is a kernel from the analyzer host, which only reads its package
  (so it may share it with a training task) and reports its own progress.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..core.fields import FieldSpec, boolean, integer, optional, path, text
from ..core.tasks import RUNNERS, Runner, TaskKind, TaskRecord
from .submissions import submit_analyze, submit_continue, submit_train

# A submission: the intake, then the request's checked fields as keywords.
Submit = Callable[..., TaskRecord]


class PathRule(enum.Enum):
    ANY = "any"  # the verb says what is wrong with it (a missing config names the file)
    FOLDER = "folder"  # must be an existing folder when the request arrives


@dataclass(frozen=True)
class TaskKindSpec:
    kind: TaskKind
    fields: Mapping[str, FieldSpec]
    paths: Mapping[str, PathRule]
    submit: Submit  # submissions.submit_<kind>(intake, **fields)

    @property
    def runner(self) -> Runner:
        return RUNNERS[self.kind]


_PLACEMENT = {
    "description": FieldSpec(text()),
    "memory_mb": FieldSpec(optional(integer(1))),
    "cpu": FieldSpec(boolean),
    "jump": FieldSpec(boolean),
}
_CARDS = {"multi_gpu": FieldSpec(boolean), "ddp": FieldSpec(boolean)}
# -1 is DLNest's "the latest"; it is resolved to a real id before anything is stored.
_CHECKPOINT = {"checkpoint_id": FieldSpec(optional(integer(-1)))}

KINDS: Mapping[TaskKind, TaskKindSpec] = {
    TaskKind.TRAIN: TaskKindSpec(
        TaskKind.TRAIN,
        fields={
            "config_path": FieldSpec(path, required=True),
            "freq_path": FieldSpec(optional(path)),
            "no_save": FieldSpec(boolean),
            "use_description": FieldSpec(boolean),
            **_PLACEMENT,
            **_CARDS,
        },
        paths={"config_path": PathRule.ANY, "freq_path": PathRule.ANY},
        submit=submit_train,
    ),
    TaskKind.CONTINUE: TaskKindSpec(
        TaskKind.CONTINUE,
        fields={
            "record_path": FieldSpec(path, required=True),
            **_CHECKPOINT,
            # Laid over the checkpoint's config, in a branch of its own (core/continuation.py).
            "freq_path": FieldSpec(optional(path)),
            "epochs": FieldSpec(optional(integer(1))),  # train until epoch N in total
            **_PLACEMENT,
            **_CARDS,
        },
        paths={"record_path": PathRule.ANY, "freq_path": PathRule.ANY},
        submit=submit_continue,
    ),
    TaskKind.ANALYZE: TaskKindSpec(
        TaskKind.ANALYZE,
        fields={
            "record_path": FieldSpec(path, required=True),
            "scripts_dir": FieldSpec(optional(path)),
            **_CHECKPOINT,
            **_PLACEMENT,
        },
        paths={"record_path": PathRule.ANY, "scripts_dir": PathRule.FOLDER},
        submit=submit_analyze,
    ),
}
