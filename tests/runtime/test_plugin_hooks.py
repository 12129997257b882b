"""DLNest's plugin mechanism: a plugin's hook runs first with the host as `self`, dicts merge,
a failure is said once, and a hook no plugin defines is the host's own method."""

from __future__ import annotations

from typing import Any

import pytest

from dlnest_jupyter.core.errors import ConfigError
from dlnest_jupyter.runtime.plugin_hooks import (
    LIFE_CYCLE_HOOKS,
    MERGED,
    RUNNER_HOOKS,
    Plugin,
    Plugins,
    load_plugins,
)
from dlnest_jupyter.runtime.plugins.mails_note import DLNestPlugin as MailsNote
from dlnest_jupyter.runtime.runner import RunnerBase


class Recording(RunnerBase):
    def init(self, args: dict[str, Any], datasetInfo: dict[str, Any] | None = None) -> None:
        self.calls.append("host init")

    def initLog(self) -> dict[str, Any]:
        return {"loss": [], "shared": "host"}

    def visualize(self, log: dict[str, Any], iter: int, epoch: int) -> None:
        self.calls.append(f"host visualize {iter}")


class Watcher:
    def runnerInit(self: Any, args: dict[str, Any], datasetInfo: Any = None) -> None:
        self.calls.append(f"plugin runnerInit {sorted(args)}")

    def initLog(self: Any) -> dict[str, Any]:
        return {"plugin_key": [], "shared": "plugin"}

    def visualize(self: Any, epoch: int, iter: int, log: dict[str, Any]) -> None:
        self.calls.append(f"plugin visualize {iter} as {type(self).__name__}")


class Broken:
    def visualize(self: Any, **kwargs: Any) -> None:
        raise ValueError("broken plugin")


def runner_with(*plugins: type) -> tuple[Recording, Plugins]:
    runner = Recording({"lr": 1})
    runner.calls = []  # type: ignore[attr-defined]
    loaded = Plugins([Plugin(p.__name__, p) for p in plugins])
    loaded.attach(runner, RUNNER_HOOKS, MERGED)
    return runner, loaded


def test_a_plugins_hook_runs_first_with_the_host_as_self_and_keywords_as_given() -> None:
    runner, _ = runner_with(Watcher)

    runner.init({"lr": 1})
    runner.visualize(log={}, iter=3, epoch=1)

    assert runner.calls == [  # type: ignore[attr-defined]
        "plugin runnerInit ['lr']",
        "host init",
        "plugin visualize 3 as Recording",
        "host visualize 3",
    ]
    assert runner.initLog() == {"plugin_key": [], "shared": "host", "loss": []}


def test_a_hook_no_plugin_defines_is_the_hosts_own_method() -> None:
    runner, _ = runner_with(Watcher)

    assert "runOneStep" not in vars(runner) and "validationInit" not in vars(runner)
    assert "visualize" in vars(runner)
    assert "validate" not in vars(runner)  # not grown where the host has none


def test_a_failing_plugin_is_said_once_and_the_host_still_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runner, _ = runner_with(Broken)

    for step in range(3):
        runner.visualize(log={}, iter=step, epoch=1)

    said = capsys.readouterr().err
    assert said.count("dlnest: plugin Broken failed in visualize (said once") == 1
    assert "ValueError: broken plugin" in said
    assert runner.calls == ["host visualize 0", "host visualize 1", "host visualize 2"]  # type: ignore[attr-defined]


def test_the_life_cycle_hooks_are_dlnests() -> None:
    assert {"BAll", "AAll", "BModelOneStep", "ATrain", "trainAborting", "commandLineOutput"} <= set(
        LIFE_CYCLE_HOOKS
    )
    assert "needContinueTrain" not in LIFE_CYCLE_HOOKS


def test_shipped_plugins_load_by_name_and_an_unknown_one_is_named() -> None:
    assert [p.cls for p in load_plugins({"plugins": ["MailsNote"]}).loaded] == [MailsNote]
    with pytest.raises(
        ConfigError, match="unknown plugin 'Mails': the shipped plugins are LogInit"
    ):
        load_plugins({"plugins": ["Mails"]})
    with pytest.raises(ConfigError, match="'plugins' must be a list"):
        load_plugins({"plugins": "MailsNote"})


def test_every_shipped_plugin_has_a_module_under_dlnests_name() -> None:
    from dlnest_jupyter.core.plugin_configs import SHIPPED
    from dlnest_jupyter.runtime.dlnest_names import PLUGIN_MODULES

    assert set(PLUGIN_MODULES) == set(SHIPPED)


def test_dlnest_names_stay_ours_when_installed_again_and_a_listed_twice_plugin_runs_once() -> None:
    from dlnest_jupyter.runtime import dlnest_names

    dlnest_names.install()
    from DLNest.Plugins.MailsNote import DLNestPlugin as first  # type: ignore[import-not-found]

    dlnest_names.install()
    from DLNest.Plugins.MailsNote import DLNestPlugin as second  # type: ignore[import-not-found]

    assert first is second is MailsNote
    assert MailsNote.__module__ == "dlnest_jupyter.runtime.plugins.mails_note"
    assert len(load_plugins({"plugins": ["MailsNote", "MailsNote"]}).loaded) == 1


def test_a_run_stopped_on_purpose_mails_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from dlnest_jupyter.runtime.plugins import mails_note

    sent: list[str] = []
    monkeypatch.setattr(mails_note, "send", lambda settings, subject, text: sent.append(subject))
    host = Recording({"plugins_config": {"MailsNote": {"username": "me"}}})

    MailsNote.trainAborting(host, SystemExit(143))  # a del, or a sweep's pruner
    MailsNote.trainAborting(host, RuntimeError("diverged"))

    assert sent == ["Train Aborted!"]
