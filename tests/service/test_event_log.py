from __future__ import annotations

from dlnest_jupyter.service.event_log import EventLog


def test_readers_get_only_what_is_new_after_their_offset() -> None:
    log = EventLog()
    log.write("task 1 queued")
    offset, text = log.read()
    log.write("task 1 started")

    end, new = log.read(offset)

    assert (
        text.endswith("task 1 queued\n")
        and new.endswith("task 1 started\n")
        and "queued" not in new
    )
    assert log.read(end) == (end, "")


def test_offsets_stay_valid_across_clear_and_trimming() -> None:
    log = EventLog(max_chars=40)
    for n in range(10):
        log.write(f"line {n}")
    end, text = log.read()
    assert len(text) <= 40 and text.endswith("line 9\n")

    log.clear()
    log.write("after clear")

    assert log.read(0)[1].endswith("after clear\n")
    assert log.read(end)[1].endswith("after clear\n")
