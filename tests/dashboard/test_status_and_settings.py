"""The status line says when nothing refreshes it any more; Settings say what they mean."""

from __future__ import annotations

import re

from dlnest_jupyter.client.client import Client
from dlnest_jupyter.dashboard import Dashboard

from .conftest import Transport

SETTINGS_TAB = 5


def stale_after_s(status: str) -> float:
    """When the "stopped" twin of the status line shows, from its CSS animation's delay."""
    match = re.search(r"visibility:hidden;animation:dlnest-stale 0s linear ([\d.]+)s", status)
    assert match, status
    return float(match.group(1))


def test_an_orphaned_dashboard_reads_stopped_once_its_refreshes_stop(
    client: Client, transport: Transport
) -> None:
    board = Dashboard(client, start=False)
    status = board.status.value

    assert "stopped (kernel restarted?)" in status  # drawn hidden, shown by CSS when stale
    assert stale_after_s(status) > board.backoff_s()
    transport.down = True
    for _ in range(5):
        board.refresh()
    assert "disconnected" in board.status.value
    # A dashboard waiting to retry is not stopped: its twin waits longer than the retry.
    assert stale_after_s(board.status.value) > board.backoff_s() > board.refresh_s
    board.close()
    assert "stopped (closed)" in board.status.value


def test_settings_explain_the_tasks_per_card_default_and_apply_says_what_changed(
    client: Client,
) -> None:
    board = Dashboard(client, start=False)
    panel = board.settings_panel
    board.tabs.selected_index = SETTINGS_TAB

    for box in (
        panel.max_tasks,
        panel.delay,
        panel.retries,
    ):  # the label whole, and room left for the value
        label_px, whole_px = (
            int(w.removesuffix("px")) for w in (box.style.description_width, box.layout.width)
        )
        assert label_px >= 7 * len(box.description) and whole_px - label_px >= 120
    assert "the default, 10,000, means no limit" in panel.explained.value
    panel.max_tasks.value = 2
    panel.apply.click()
    board.refresh()

    assert client.settings()["max_tasks_per_device"] == 2
    assert board.message.value == "settings: tasks per card 10000 → 2"
    panel.guard.value = True
    panel.apply.click()
    board.refresh()
    assert client.settings()["guard_memory"] is True
    assert board.message.value == "settings: guard False → True"
    board.close()
