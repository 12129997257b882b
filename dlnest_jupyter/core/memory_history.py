"""What earlier runs of a job used: the queue's memory history, by memory fingerprint.

Each training run that ends by itself leaves a row (`memory_history` in the queue's database,
`store_schema.py`): its peak GPU memory on its busiest card and over all its cards, how long it
ran and how many epochs. A submission without `-m` reserves from the highest peak of its
fingerprint's runs (`core/memory_fingerprint.py`); backfill reads the durations. A user may
forget a fingerprint's history (`%dlnest forget`). Rows live as long as the queue does, so the
history survives restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .store_connection import StoreConnection


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

    def forget(self, fingerprint: str) -> int:
        """Drop the fingerprint's history; returns how many runs it held."""
        with self.connection._write() as db:
            return db.execute(
                "DELETE FROM memory_history WHERE fingerprint = ?", (fingerprint,)
            ).rowcount
