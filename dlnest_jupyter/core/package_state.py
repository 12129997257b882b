"""A save package's checkpoint book (`_package.json`), and how saves and continues change it.

A package's checkpoints form branches. Branch 0 is the first run; a continue from a checkpoint
that is its branch's newest goes on in that branch, and a continue from an older one forks a
new branch at it. Each branch keeps its own retention tracks (`core/checkpoints.py`), so a
branch's saves only ever push out that branch's own checkpoints: continuing from checkpoint 6
never deletes 7, the original run's last (DLNest kept abandoned files too; our first tracks
were per package and deleted them).

A continue that changes the config (`-f`, `--epochs`: core/continuation.py) always forks: a
branch's config is its `overrides` laid over `args.json` (the first run's, never rewritten),
so every checkpoint loads with the config it was trained with, whichever branch is continued
or analysed later.

Pure functions over values: the writer in `runtime/checkpoint_io.py` does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .checkpoints import SavePlan, TrackLimits, Tracks, plan_save
from .config import merge
from .secrets import redacted

DEFAULT_PREFIX = "state_"
PACKAGE_FORMAT = 2  # 2: tracks per branch


@dataclass(frozen=True)
class CheckpointInfo:
    epoch: int
    parent: int | None  # the branch head when this checkpoint was saved
    branch: int = 0


@dataclass(frozen=True)
class Branch:
    tracks: Tracks = field(default_factory=Tracks)
    parent: int | None = None  # the branch this one forked from (None: the first run)
    fork_checkpoint: int | None = None  # the checkpoint it continued from
    head: int | None = None  # its newest checkpoint (before its first save: the fork point)
    overrides: Mapping[str, Any] = field(default_factory=dict)  # its config, over args.json

    def to_json(self) -> dict[str, Any]:
        return {
            "ckpt_fast": list(self.tracks.fast),
            "ckpt_slow": list(self.tracks.slow),
            "ckpt_consistent": list(self.tracks.consistent),
            "parent": self.parent,
            "fork_checkpoint": self.fork_checkpoint,
            "head": self.head,
            "overrides": dict(self.overrides),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Branch:
        tracks = Tracks(
            fast=tuple(raw.get("ckpt_fast", ())),
            slow=tuple(raw.get("ckpt_slow", ())),
            consistent=tuple(raw.get("ckpt_consistent", ())),
        )
        held = sorted(tracks.held())
        # DLNest 0.3 wrote no head: its newest kept checkpoint is the latest.
        head = raw["head"] if "head" in raw else (held[-1] if held else None)
        overrides = raw.get("overrides") or {}
        return cls(tracks, raw.get("parent"), raw.get("fork_checkpoint"), head, overrides)


def _first_branch() -> Mapping[int, Branch]:
    return {0: Branch()}


@dataclass(frozen=True)
class PackageState:
    """The content of `_package.json`."""

    prefix: str = DEFAULT_PREFIX
    next_id: int = 0
    branch: int = 0  # the current branch: where "latest" and the next save go
    branches: Mapping[int, Branch] = field(default_factory=_first_branch)
    checkpoints: Mapping[int, CheckpointInfo] = field(default_factory=dict)

    @property
    def head(self) -> int | None:
        """The newest checkpoint of the current branch: what "latest" means."""
        return self.branches[self.branch].head

    @property
    def tracks(self) -> Tracks:
        """The current branch's tracks."""
        return self.branches[self.branch].tracks

    def held_ids(self) -> list[int]:
        """Every checkpoint some branch keeps."""
        held: set[int] = set()
        for branch in self.branches.values():
            held |= branch.tracks.held()
        return sorted(held)

    def overrides_of(self, checkpoint_id: int | None) -> Mapping[str, Any]:
        """The config changes the checkpoint was trained with, over `args.json` (None: a
        fresh run, which has none)."""
        if checkpoint_id is None:
            return {}
        return self.branches[self.branch_of(checkpoint_id)].overrides

    def branch_of(self, checkpoint_id: int) -> int:
        info = self.checkpoints.get(checkpoint_id)
        if info is not None and info.branch in self.branches:
            return info.branch
        for number, branch in self.branches.items():  # a package written before branches
            if checkpoint_id in branch.tracks.held():
                return number
        return self.branch

    def to_json(self) -> dict[str, Any]:
        current = self.branches[self.branch]
        return {
            "format": PACKAGE_FORMAT,
            "prefix": self.prefix,
            # DLNest 0.3's keys, for tools that read them: the current branch's tracks.
            "ckpt_fast": list(current.tracks.fast),
            "ckpt_slow": list(current.tracks.slow),
            "ckpt_consistent": list(current.tracks.consistent),
            "next_id": self.next_id,
            "head": self.head,
            "branch": self.branch,
            "branches": {str(n): b.to_json() for n, b in sorted(self.branches.items())},
            "checkpoints": {
                str(i): {"epoch": info.epoch, "parent": info.parent, "branch": info.branch}
                for i, info in sorted(self.checkpoints.items())
            },
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], ids_on_disk: list[int]) -> PackageState:
        if "branches" in raw:
            branches = {int(n): Branch.from_json(b) for n, b in raw["branches"].items()}
            current = int(raw.get("branch", 0))
        else:  # format 1, or DLNest 0.3 (no head either): the package's tracks
            branches = _format_1_branches(Branch.from_json(raw), raw.get("checkpoints", {}))
            current = 0
        held: set[int] = set()
        for branch in branches.values():
            held |= branch.tracks.held()
        # A DLNest 0.3 package has no next_id: continue after the highest id, on disk too.
        next_id = raw.get("next_id", max([*held, *ids_on_disk], default=-1) + 1)
        checkpoints = {
            int(i): CheckpointInfo(
                epoch=info["epoch"], parent=info.get("parent"), branch=info.get("branch", 0)
            )
            for i, info in raw.get("checkpoints", {}).items()
        }
        return cls(
            prefix=raw.get("prefix", DEFAULT_PREFIX),
            next_id=next_id,
            branch=current,
            branches=branches,
            checkpoints=checkpoints,
        )


def continue_from(
    state: PackageState, checkpoint_id: int, overrides: Mapping[str, Any] | None = None
) -> PackageState:
    """The book once a run continues from `checkpoint_id`, with `overrides` to its config.

    From the newest checkpoint of a branch, that branch goes on (the current branch first: a
    retry of a fork that never saved is that fork again, not another); from an older one, or
    with overrides, a new branch forks there, keeping nothing yet (its head is the fork point
    until it saves) and with its parent's config changed by `overrides`. Numbers are never
    reused, even for a branch that saved nothing: its epochs may be in the metrics.
    """
    if not overrides:
        if state.branches[state.branch].head == checkpoint_id:
            return state
        owner = state.branch_of(checkpoint_id)
        if state.branches[owner].head == checkpoint_id:
            return replace(state, branch=owner)
    owner = state.branch_of(checkpoint_id)
    new = max(state.branches) + 1
    fork = Branch(
        parent=owner,
        fork_checkpoint=checkpoint_id,
        head=checkpoint_id,
        overrides=merge(state.branches[owner].overrides, overrides or {}),
    )
    return replace(state, branch=new, branches={**state.branches, new: fork})


def record_save(
    state: PackageState, limits: TrackLimits, new_id: int, epoch: int, hold: bool
) -> tuple[PackageState, SavePlan]:
    """The book after a save of `new_id` in the current branch, and what to write and delete.

    Only the current branch's tracks move, so only its own checkpoints can be deleted: every
    other branch's files, the fork point included, stay.
    """
    branch = state.branches[state.branch]
    plan = plan_save(branch.tracks, limits, new_id, hold)
    infos = {i: info for i, info in state.checkpoints.items() if i not in plan.delete}
    head = branch.head
    if plan.write:
        infos[new_id] = CheckpointInfo(epoch=epoch, parent=head, branch=state.branch)
        head = new_id
    branches = {**state.branches, state.branch: replace(branch, tracks=plan.tracks, head=head)}
    return replace(state, next_id=new_id + 1, branches=branches, checkpoints=infos), plan


def checkpoints_json(state: PackageState) -> dict[str, Any]:
    """The REST reply of `GET tasks/{id}/checkpoints`: held checkpoints and the branches."""

    def epoch(checkpoint_id: int | None) -> int | None:
        info = state.checkpoints.get(checkpoint_id) if checkpoint_id is not None else None
        return info.epoch if info is not None else None

    return {
        "head": state.head,
        "checkpoints": [
            {
                "id": i,
                "epoch": epoch(i),
                "branch": state.branch_of(i),
                "parent": state.checkpoints[i].parent if i in state.checkpoints else None,
            }
            for i in state.held_ids()
        ],
        "branches": [
            {
                "id": number,
                "parent": branch.parent,
                "head": branch.head,
                "fork_checkpoint": branch.fork_checkpoint,
                "fork_epoch": epoch(branch.fork_checkpoint),
                # its config's changes over args.json, a continue -f's plugin password hidden
                "overrides": redacted(branch.overrides),
            }
            for number, branch in sorted(state.branches.items())
        ],
    }


def _format_1_branches(whole: Branch, infos: Mapping[str, Mapping[str, Any]]) -> dict[int, Branch]:
    """A package from before branches kept one set of tracks. Where its head is not its newest
    checkpoint, a continue from an older one had begun a line of its own: the newer ids are the
    abandoned line's, and go to a branch of their own, so the current line's saves cannot push
    them out (the original run's last checkpoint among them)."""
    head = whole.head
    newer = {i for i in whole.tracks.held() if head is not None and i > head}
    if not newer:
        return {0: whole}

    def split(track: tuple[int, ...], keep: bool) -> tuple[int, ...]:
        return tuple(i for i in track if (i in newer) is keep)

    def tracks(keep: bool) -> Tracks:
        t = whole.tracks
        return Tracks(split(t.fast, keep), split(t.slow, keep), split(t.consistent, keep))

    oldest = infos.get(str(min(newer)), {})
    abandoned = Branch(
        tracks(True), parent=0, fork_checkpoint=oldest.get("parent"), head=max(newer)
    )
    return {0: replace(whole, tracks=tracks(False)), 1: abandoned}
