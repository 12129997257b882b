"""What earlier runs of a job used: the queue's memory history, by memory fingerprint.

Each training run leaves a row (`memory_history` in the queue's database, `store_schema.py`):
its peak GPU memory on its busiest card and over all its cards, how long it ran and how many
epochs. The row is written once the run has warmed up (its peak is known, its duration not yet:
the runs of its job queued behind it need not wait for its end to learn) and again when it ends. A submission without `-m` reserves from the highest peak of its
fingerprint's runs (`core/memory_fingerprint.py`); backfill reads the durations. A user may
forget a fingerprint's history (`%dlnest forget`). Rows live as long as the queue does, so the
history survives restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .store_connection import StoreConnection
from .tasks import TaskState


@dataclass(frozen=True)
class Learned:
    """What a fingerprint's earlier runs tell."""

    runs: int
    card_peak_mb: int  # the most any run held on one card
    total_peak_mb: int  # the most any run held over all its cards
    mean_duration_s: float | None  # of the runs that say how long they ran


class MemoryHistory:
    def __init__(self, connection: StoreConnection) -> None:
        self.connection = connection

    def record(
        self,
        fingerprint: str,
        task_id: int,
        peak_mb_by_card: Mapping[int, int],
        duration_s: float | None,
        epochs: int | None,
        ended_at: float,
    ) -> None:
        """Remember a run's peak (recording the same task again replaces its row)."""
        if not peak_mb_by_card:
            return
        with self.connection._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO memory_history (fingerprint, task_id, card_peak_mb,"
                " total_peak_mb, duration_s, epochs, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    fingerprint,
                    task_id,
                    max(peak_mb_by_card.values()),
                    sum(peak_mb_by_card.values()),
                    duration_s,
                    epochs,
                    ended_at,
                ),
            )

    def learned(self, fingerprint: str) -> Learned | None:
        """What the fingerprint's runs used; None when none has been recorded."""
        [(runs, card, total, duration)] = self.connection.read(
            "SELECT COUNT(*), MAX(card_peak_mb), MAX(total_peak_mb), AVG(duration_s)"
            " FROM memory_history WHERE fingerprint = ?",
            (fingerprint,),
        )
        return Learned(runs, card, total, duration) if runs else None

    def teach_queued(self, fingerprint: str, reserve_mb: int, runs: int) -> int:
        """Queued one-card and -DDP runs (`reserve_mb` is each rank's) of the job that were
        submitted without `-m` and before it had a history reserve `reserve_mb` now; returns
        how many did."""
        with self.connection._write() as db:
            return db.execute(
                "UPDATE tasks SET spec = json_set(spec, '$.learned_mb', ?, '$.learned_runs', ?),"
                " memory_note = 'learned while queued, from a run of its job'"
                " WHERE state = ? AND memory_mb IS NULL"
                " AND json_extract(spec, '$.memory_fingerprint') = ?"
                " AND json_extract(spec, '$.learned_mb') IS NULL"
                " AND NOT COALESCE(json_extract(spec, '$.cpu'), 0)"
                " AND NOT COALESCE(json_extract(spec, '$.multi_gpu'), 0)",
                (reserve_mb, runs, TaskState.QUEUED, fingerprint),
            ).rowcount

    def forget(self, fingerprint: str) -> int:
        """Drop the fingerprint's history; returns how many runs it held."""
        with self.connection._write() as db:
            return db.execute(
                "DELETE FROM memory_history WHERE fingerprint = ?", (fingerprint,)
            ).rowcount
