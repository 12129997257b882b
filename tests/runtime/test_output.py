from __future__ import annotations

from pathlib import Path

from ..conftest import new_package, train_in_process
from ..projects import life_cycle_source, write_project

NOISY = """
def BTrain(self):
    import os, subprocess, sys
    print("from print")
    print("from stderr", file=sys.stderr)
    os.write(1, b"from fd 1 directly\\n")
    subprocess.run(["sh", "-c", "echo from a child process; echo child stderr >&2"], check=True)
"""


def test_python_c_level_and_child_process_output_all_reach_the_output_file(tmp_path: Path) -> None:
    package = new_package(
        write_project(tmp_path / "p", epochs=1, life_cycle=life_cycle_source(NOISY))
    )

    assert train_in_process(package) == 0

    output = package.output_path().read_text()
    for line in (
        "from print",
        "from stderr",
        "from fd 1 directly",
        "from a child process",
        "child stderr",
    ):
        assert line in output
