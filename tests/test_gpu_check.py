"""The GPU check runs its checks on pretend cards, so it works the day a GPU is lent."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.slow
def test_the_gpu_check_passes_on_pretend_cards_and_reports_each_check() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--pretend", "2x16384"],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("placement", "measured peak", "guard", "-mc", "-DDP (nccl)"):
        assert f"PASS  {check}:" in result.stdout
    assert "all checks passed" in result.stdout
