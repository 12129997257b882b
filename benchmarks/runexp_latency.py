"""runExp latency: a trivial experiment on a loaded analyzer against reloading the package for it.

- value: the median time of `POST tasks/{id}/experiments {"name": "trivial"}` plus the long-polled
  `GET tasks/{id}/experiments/{eid}?wait_s=...` that sees it end, over REST to a real
  `jupyter server` whose analyzer kernel holds the model;
- baseline: the median time of a one-shot `dlnest analyze -r PKG -s trivial.py -CPU`, which
  starts Python, imports torch, builds the dataset and model and loads the checkpoint every time
  (DLNest's only way without a loaded analyzer), in the same run.
Goal: median at most 30 ms, and at least 50 times faster than the reload path.

    .venv/bin/python benchmarks/runexp_latency.py [--runs N] [--reloads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dlnest_jupyter.core.config import load_config
from dlnest_jupyter.core.package_creation import PackageOptions, create_package
from dlnest_jupyter.runtime.train import TrainRequest, run_training

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.headless import HeadlessServer
from tests.projects import write_project

REPO = Path(__file__).resolve().parents[1]

TRIVIAL = "def experience(self):\n    return self.checkpoint_id\n"


def timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run_experiment(server: HeadlessServer, task_id: int) -> dict[str, Any]:
    path = f"dlnest/api/tasks/{task_id}/experiments"
    experiment = server.call("POST", path, {"name": "trivial"})["experiment"]
    while experiment["state"] == "running":
        experiment = server.call("GET", f"{path}/{experiment['id']}?wait_s=10")["experiment"]
    if experiment["state"] != "succeeded":
        raise SystemExit(f"experiment {experiment['id']} {experiment['state']}: {experiment}")
    return experiment  # type: ignore[no-any-return]


def wait_until_loaded(server: HeadlessServer, task_id: int) -> None:
    deadline = time.monotonic() + 300
    while True:
        task = server.call("GET", f"dlnest/api/tasks/{task_id}")["task"]
        if task["progress"].get("analyzer") == "ready":
            return
        if task["state"] != "running" or time.monotonic() > deadline:
            raise SystemExit(f"the analyzer did not load: {task}\n{server.log_tail()}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="experiments on the loaded analyzer")
    parser.add_argument("--reloads", type=int, default=3, help="one-shot `dlnest analyze` runs")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        config = write_project(root / "proj", epochs=2)
        package = create_package(load_config(config), PackageOptions())
        assert run_training(package, TrainRequest(kind="train")) == 0
        scripts = root / "proj" / "AnalyzeScripts"
        scripts.mkdir()
        (scripts / "trivial.py").write_text(TRIVIAL)

        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
            # The analyzer kernelspec from the checkout, whether or not `pip install` put it in place.
            "JUPYTER_PATH": os.pathsep.join(
                filter(None, [str(REPO / "labextension_config"), os.environ.get("JUPYTER_PATH")])
            ),
        }
        flags = [
            f"--DLNestApp.database_path={root / 'dlnest.sqlite'}",
            "--DLNestApp.fake_gpus=1x16384",
        ]
        with HeadlessServer(root, root / "server.log", flags, env) as server:
            body = {"kind": "analyze", "record_path": str(package.path), "cpu": True}
            task_id = server.call("POST", "dlnest/api/tasks", body)["task"]["id"]
            wait_until_loaded(server, task_id)
            for _ in range(5):  # warm up: the first executions import the script machinery
                run_experiment(server, task_id)
            loaded_s = statistics.median(
                timed(lambda: run_experiment(server, task_id)) for _ in range(options.runs)
            )
            result = run_experiment(server, task_id)["result"]
            server.call("DELETE", f"dlnest/api/tasks/{task_id}")

        reload_command = [
            sys.executable, "-m", "dlnest_jupyter.cli", "analyze",
            "-r", str(package.path), "-s", str(scripts / "trivial.py"), "-CPU",
        ]  # fmt: skip
        reload_s = statistics.median(
            timed(lambda: subprocess.run(reload_command, check=True, capture_output=True))
            for _ in range(options.reloads)
        )
    ratio = reload_s / loaded_s
    print(
        f"runExp on a loaded analyzer: median {loaded_s * 1e3:.1f} ms over {options.runs} runs (result {result})"
    )
    print(
        f"one-shot dlnest analyze (reload): median {reload_s * 1e3:.0f} ms over {options.reloads} runs"
    )
    print(
        json.dumps(
            {
                "metric": "runexp_median_ms",
                "value": round(loaded_s * 1e3, 2),
                "baseline": round(reload_s * 1e3, 1),
                "ratio": round(ratio, 1),
                "goal": "median <= 30 ms and >= 50x faster than a one-shot reload",
                "met": loaded_s <= 0.030 and ratio >= 50,
            }
        )
    )


if __name__ == "__main__":
    main()
