from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from dlnest_jupyter.core.lease import Lease, Presence, is_present

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dlnest_jupyter.core.lease import Lease, Presence
    lease = Lease(Path(sys.argv[1]))
    presence = Presence(Path(sys.argv[2]), "holder")
    presence.enter()
    print(lease.try_acquire(), flush=True)
    time.sleep(600)
    """
)


def test_a_lease_has_one_holder_at_a_time(tmp_path: Path) -> None:
    first, second = Lease(tmp_path / "q.scheduler"), Lease(tmp_path / "q.scheduler")

    assert first.try_acquire() and first.try_acquire()  # taking it again is a no-op
    assert not second.try_acquire() and not second.held
    first.release()
    assert second.try_acquire() and second.held


def test_a_holder_killed_with_sigkill_loses_its_lease_and_presence_at_once(tmp_path: Path) -> None:
    lease_path, services = tmp_path / "q.scheduler", tmp_path / "q.services"
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lease_path), str(services)],
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        mine = Lease(lease_path)
        assert not mine.try_acquire()
        assert is_present(services, "holder")

        holder.send_signal(signal.SIGKILL)
        holder.wait()

        assert mine.try_acquire()  # no timeout: the kernel dropped the dead holder's lock
        assert not is_present(services, "holder")
        assert not (services / "holder.lock").exists()  # tidied up by whoever saw it dead


def test_presence_says_who_is_alive(tmp_path: Path) -> None:
    alive, other = Presence(tmp_path), Presence(tmp_path)
    alive.enter()
    other.enter()

    assert alive.is_alive(other.id) and other.is_alive(alive.id)
    assert not alive.is_alive("never-existed") and not alive.is_alive("../etc/passwd")
    other.leave()
    assert not alive.is_alive(other.id)
    assert alive.is_alive(alive.id)
    (tmp_path / "killed-long-ago.lock").touch()  # a service that died without leaving
    alive.sweep()
    assert sorted(p.name for p in tmp_path.glob("*.lock")) == [f"{alive.id}.lock"]
