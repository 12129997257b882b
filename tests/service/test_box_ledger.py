"""Two users' schedulers on one box share the box ledger: a card is never booked twice."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlnest_jupyter.core.box_ledger import BoxLedger, OtherReservation
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind, TaskState
from dlnest_jupyter.service.service import DLNestService

from ..conftest import REPO
from ..projects import write_project
from ..recording_executor import SleepingExecutor

OTHER_USER = "dlnest-box-test"
CARD_MB, TASK_MB, EACH = 16384, 3000, 8  # five tasks fit on the card, of sixteen asked for


def other_user() -> pwd.struct_passwd:
    """A second OS user, made once (needs root, useradd and setpriv); skips where impossible."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second user and run a process as it")
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to run a process as a second user")
    try:
        return pwd.getpwnam(OTHER_USER)
    except KeyError:
        pass
    if shutil.which("useradd") is None:
        pytest.skip("needs useradd to create a second user")
    made = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"could not create a second user: {made.stderr.strip()}")
    return pwd.getpwnam(OTHER_USER)


@pytest.fixture
def others_scheduler(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """The other user's scheduler process, over its own queue, and the box folder."""
    user = other_user()
    box = tmp_path / "box"  # BoxLedger makes it mode 1777, as an admin would
    BoxLedger(box, tmp_path / "mine.sqlite")
    home = tmp_path / "other"
    config = write_project(home / "proj", epochs=1)
    for folder, _, files in os.walk(home):
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            os.chown(name, user.pw_uid, user.pw_gid)
    # The other user runs our venv's Python, which lies under root's 0700 home: it may read and
    # search any file (CAP_DAC_READ_SEARCH) but writes only as itself, so the sticky folder's
    # rules hold for it as for any user.
    command = [
        "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
        sys.executable, str(Path(__file__).with_name("box_user_process.py")),
        str(home / "queue.sqlite"), str(box), str(config), str(EACH), str(TASK_MB),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    with process:  # closes its pipes on the way out
        yield process, box
        if process.poll() is None:
            process.kill()


def test_two_users_never_book_one_card_twice_and_a_dead_task_frees_its_share(
    tmp_path: Path, others_scheduler: tuple[subprocess.Popen[str], Path]
) -> None:
    process, box = others_scheduler
    config = write_project(tmp_path / "mine", epochs=1)
    database = tmp_path / "mine.sqlite"
    mine = DLNestService(
        TaskStore(database),
        FakeSource((CARD_MB,)),
        SleepingExecutor(),
        box=BoxLedger(box, database),
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("go\n")  # both users submit at once
        process.stdin.flush()
        for _ in range(EACH):
            mine.submit(TaskKind.TRAIN, config_path=config, memory_mb=TASK_MB)
        assert process.stdout.readline().strip() == "submitted"

        deadline = time.monotonic() + 60
        while True:  # until the other user's scheduler has placed what it could
            mine.tick()
            ours = sum(t.reserved_mb[0] for t in mine.store.holding())
            theirs = sum(o.memory_mb_by_device.get(0, 0) for o in _others(mine))
            assert ours + theirs <= CARD_MB  # never more than the card, at any moment
            if ours + theirs == 5 * TASK_MB:
                break
            assert time.monotonic() < deadline, (ours, theirs)
            time.sleep(0.05)
        print(f"placed: ours {ours // TASK_MB}, theirs {theirs // TASK_MB}")
        card = mine.queries.devices()[0]
        assert card["memory_reserved_mb"] + card["memory_reserved_by_others_mb"] == 5 * TASK_MB
        assert card["memory_free_mb"] == CARD_MB - 5 * TASK_MB
        if theirs:
            assert card["other_users"] == [OTHER_USER]
        # The other user cannot remove or replace our rows; we cannot theirs.
        own = _box(mine).own_file
        assert own.stat().st_uid == 0 and box.stat().st_mode & 0o1777 == 0o1777

        # Their scheduler dies, then their tasks: nobody is left to withdraw their rows, and
        # their share of the card comes back to us all the same.
        their_pids = [o.pid for o in _others(mine)]
        process.kill()
        process.wait()
        for pid in their_pids:
            if pid is not None:
                os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(mine.store.holding()) < 5:
            assert time.monotonic() < deadline
            mine.tick()
            time.sleep(0.05)
        assert _others(mine) == []
        assert len(mine.store.list_tasks([TaskState.QUEUED])) == EACH - 5
    finally:
        mine.stop()


def _box(service: DLNestService) -> BoxLedger:
    box = service.queries.box
    assert isinstance(box, BoxLedger)
    return box


def _others(service: DLNestService) -> list[OtherReservation]:
    """What other users' schedulers reserved, as this service reads the box ledger."""
    return _box(service).others()
