"""The dashboard in JupyterLab 4 and Notebook 7, in a real Chromium.

A notebook queues two tasks with `%dlnest run` and shows `%dlnest dashboard`; without running any
cell again, the queue follows the first task to `succeeded`, the GPU panel shows the fake cards,
a row's button picks its task, Stop, confirmed, ends the second (a task that would hang), and
the Output tab shows the first one's newest lines.
A small `%dlnest sweep` queued beside them shows in the Sweeps tab, whose one click overlays its
trials' curves in the Metrics tab.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ..conftest import REPO
from ..projects import life_cycle_source, scored_project, write_project
from ..service.conftest import hanging_project
from .conftest import artifacts, keep, open_and_run, start_server, write_notebook

SLOW_EPOCHS = (
    "def BOneEpoch(self):\n    import time\n    time.sleep(1.0)\n"
    "    for line in range(12):\n        print('a line of output', line, flush=True)\n"
)
# The Output tab's newest line is in view: its column is scrolled to its end, and the text
# does not scroll by itself inside it.
OUTPUT_AT_ITS_END = """() => {
    const pre = [...document.querySelectorAll('.widget-tab pre')].find(
        p => p.textContent.includes('a line of output 11') && p.getBoundingClientRect().height);
    if (!pre) return false;
    const column = pre.parentElement.getBoundingClientRect();
    return pre.scrollHeight > column.height && pre.scrollHeight <= pre.clientHeight + 1
        && Math.abs(pre.getBoundingClientRect().bottom - column.bottom) < 2;
}"""
TIMEOUT_MS = 120_000


def charts_drawn(charts: int, part: str, each: int) -> str:
    """A page function: `charts` bqplot charts in view, laid out (a chart made in a hidden tab
    has no size until it is shown) and holding `each` or more of `part` (`.dot`, `.line`)."""
    return f"""() => [...document.querySelectorAll('.widget-tab .bqplot')].filter(chart => {{
        const area = chart.querySelector('rect.plotarea_background');
        return chart.getBoundingClientRect().width > 0 && area
            && Number(area.getAttribute('width')) > 0
            && chart.querySelectorAll('{part}').length >= {each};
    }}).length >= {charts}"""


def row_state(page: Any, task_id: int) -> str | None:
    """The state shown in the queue's row for `task_id` (None while it is not shown): the
    row's cells sit beside its select button."""
    cells = page.locator(f"button[title='select task {task_id}'] + .widget-html")
    if cells.count() == 0:
        return None
    match = re.search(r"^train\s+(\w+)", cells.first.inner_text(timeout=TIMEOUT_MS))
    return match.group(1) if match else None


def wait_for_state(page: Any, task_id: int, states: tuple[str, ...]) -> str:
    for _ in range(int(TIMEOUT_MS / 250)):
        state = row_state(page, task_id)
        if state in states:
            return state
        page.wait_for_timeout(250)
    raise AssertionError(f"task {task_id} never showed {states}; last: {row_state(page, task_id)}")


@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_the_dashboard_follows_tasks_and_stops_one_in_a_real_browser(
    kind: str, tmp_path: Path, browser: Any
) -> None:
    write_project(tmp_path / "quick", epochs=8, life_cycle=life_cycle_source(SLOW_EPOCHS))
    hanging_project(tmp_path / "hangs")
    scored_project(tmp_path / "scored", epochs=2)
    write_notebook(
        tmp_path / "dashboard.ipynb",
        [
            "%load_ext dlnest_jupyter",
            "%dlnest run -c quick/root_config.json -m 3000 -d 'quick <b>run</b>'",
            "%dlnest run -c hangs/root_config.json -CPU -d hangs",
            "%dlnest sweep -c scored/root_config.json -CPU --grid quality=0.2,0.9,0.5"
            " --metric score -d quality",
            "%dlnest dashboard",
        ],
    )
    server = start_server(kind, tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        open_and_run(page, server, kind, "dashboard.ipynb")
        page.wait_for_selector(".widget-tab .widget-html-content table", timeout=TIMEOUT_MS)

        first_seen = wait_for_state(page, 1, ("queued", "running", "succeeded"))
        page.screenshot(path=str(artifacts() / f"dashboard-{kind}-queue.png"), full_page=True)
        assert wait_for_state(page, 1, ("succeeded",)) == "succeeded"  # no cell ran again
        assert "quick <b>run</b>" in page.content().replace("&lt;", "<").replace("&gt;", ">")
        assert wait_for_state(page, 2, ("running",)) == "running"

        page.get_by_role("tab", name="GPUs").click()
        page.wait_for_selector("text=GPU 0: Fake GPU 0", timeout=TIMEOUT_MS)
        page.wait_for_selector("text=GPU 1: Fake GPU 1", timeout=TIMEOUT_MS)
        page.screenshot(path=str(artifacts() / f"dashboard-{kind}-gpus.png"), full_page=True)

        page.get_by_role("tab", name="Queue").click()
        for task_id in (1, 2):  # a row's button picks its task: the button turns blue
            page.locator(f"button[title='select task {task_id}']").click()
            page.wait_for_selector(f"button.mod-info[title='select task {task_id}']")
        page.locator("button.widget-button[title='Stop']").click()  # not "Stop sweep"
        page.locator("button.widget-button", has_text="Confirm: stop 2").click()  # asked once
        assert wait_for_state(page, 2, ("cancelled",)) == "cancelled"
        bars = page.locator("button[title^='select task'] + .widget-html [role=progressbar]")
        assert bars.count() >= 1 and bars.first.get_attribute("aria-valuemax") == "100"
        page.screenshot(path=str(artifacts() / f"dashboard-{kind}-stopped.png"), full_page=True)

        page.locator("button[title='select task 1']").click()  # 8 epochs of 12 lines each
        page.wait_for_selector("button.mod-info[title='select task 1']")
        page.locator("button.widget-button[title='Output']").click()
        page.wait_for_function(OUTPUT_AT_ITS_END, timeout=TIMEOUT_MS)
        page.screenshot(path=str(artifacts() / f"dashboard-{kind}-output.png"), full_page=True)

        page.get_by_role("tab", name="Sweeps").click()  # the sweep ends: its best row is marked
        best = page.locator(".widget-html-content td", has_text="(best)")
        best.wait_for(timeout=TIMEOUT_MS)
        assert best.inner_text() == "1 (best)"
        page.wait_for_function(charts_drawn(2, ".dot", 3), timeout=TIMEOUT_MS)  # 3 trials each
        sweeps_tab = page.locator(".widget-tab", has=best).first
        sweeps_tab.screenshot(path=str(artifacts() / f"dashboard-{kind}-sweeps.png"))
        page.locator("button.widget-button", has_text="Curves in Metrics").click()
        legend = page.locator(".widget-html-content caption", has_text="score")  # Metrics shown
        legend.wait_for(timeout=TIMEOUT_MS)
        page.wait_for_function(charts_drawn(1, ".line", 3), timeout=TIMEOUT_MS)
        page.screenshot(
            path=str(artifacts() / f"dashboard-{kind}-sweep-curves.png"), full_page=True
        )

        assert "Error displaying widget" not in page.content()
        assert page.locator(".jupyter-widgets-disconnected").count() == 0
        assert first_seen in ("queued", "running")  # it was followed, not found finished
    finally:
        page.screenshot(path=str(artifacts() / f"dashboard-{kind}-last.png"), full_page=True)
        page.close()
        server.stop()
        keep(server, f"dashboard-{kind}")


def test_the_sweep_notebook_draws_its_runs_curves_in_jupyterlab(
    tmp_path: Path, browser: Any
) -> None:
    """notebooks/dashboard.ipynb in JupyterLab: three runs' curves on one bqplot chart."""
    (tmp_path / "dashboard.ipynb").write_text((REPO / "notebooks" / "dashboard.ipynb").read_text())
    server = start_server("lab", tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    try:
        open_and_run(page, server, "lab", "dashboard.ipynb")
        chart = page.locator(".widget-tab .bqplot")
        chart.first.wait_for(timeout=TIMEOUT_MS)
        # Three runs, each a line with all 8 epochs: 8 markers per line once they have finished.
        page.wait_for_function(
            """() => {
                const lines = document.querySelectorAll('.widget-tab .bqplot .line');
                const dots = document.querySelectorAll('.widget-tab .bqplot .dot');
                return lines.length >= 3 && dots.length >= 24;
            }""",
            timeout=300_000,
        )
        page.locator(".jp-OutputArea-output", has_text="best acc").first.wait_for(
            timeout=TIMEOUT_MS
        )
        chart.first.scroll_into_view_if_needed()
        picture = artifacts() / "dashboard-lab-sweep.png"
        page.locator(".jp-Cell", has=chart).first.screenshot(path=str(picture))
        assert "Error displaying widget" not in page.content()
    finally:
        page.close()
        server.stop()
        keep(server, "dashboard-lab-sweep")
