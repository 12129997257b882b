"""addP and new -p on disk: DLNest's behaviour, without its bugs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlnest_jupyter.core.config import load_config
from dlnest_jupyter.core.errors import ConfigError, PluginConfigError
from dlnest_jupyter.core.project_plugins import add_plugins, plugins_added_lines
from dlnest_jupyter.core.templates import new_project

from ..projects import write_project


def read(path: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def test_plugins_go_to_root_config_when_there_is_no_plugins_config(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p")
    before = list(read(config))

    added = add_plugins(tmp_path / "p", ["LogInit", "MailsNote", "LogInit"])  # one twice: once

    written = read(config)
    assert (added.file, added.added, added.already) == (config, ("LogInit", "MailsNote"), ())
    assert written["plugins"] == ["LogInit", "MailsNote"]
    assert written["plugins_config"] == {
        "LogInit": {"level": "INFO"},
        "MailsNote": {
            "enable_list": ["Aborting", "TrainFinish"],
            "username": "",
            "password": "",
            "host": "localhost",
            "password_env": "",
        },
    }
    assert list(written)[: len(before)] == before  # the user's keys keep their order
    assert not list(config.parent.glob(".*.tmp"))  # written atomically, nothing left behind


def test_plugins_go_to_plugins_config_json_when_the_project_has_one(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p")
    plugins_file = tmp_path / "p" / "plugins_config.json"
    plugins_file.write_text(json.dumps({"plugins": ["LogInit"], "plugins_config": {}}))
    root_before = config.read_text()

    added = add_plugins(tmp_path / "p", ["SimpleCMDVisualize", "LogInit"], full=True)

    assert (added.file, added.added, added.already) == (
        plugins_file,
        ("SimpleCMDVisualize",),
        ("LogInit",),
    )
    assert read(plugins_file) == {
        "plugins": ["LogInit", "SimpleCMDVisualize"],
        "plugins_config": {"SimpleCMDVisualize": {"stride": 1, "keys": [], "format": {}}},
    }
    assert config.read_text() == root_before
    assert plugins_added_lines(added.to_json()) == [
        f"added SimpleCMDVisualize to {plugins_file}",
        f"LogInit was already listed in {plugins_file}: left as is",
    ]


def test_a_listed_plugin_is_left_as_it_is_and_a_held_config_keeps_its_values(
    tmp_path: Path,
) -> None:
    config = write_project(
        tmp_path / "p",
        args={
            "plugins": ["LogInit"],
            "plugins_config": {
                "LogInit": {"level": "DEBUG"},
                "MailsNote": {"host": "smtp.lab.example", "port": 465},
            },
        },
    )
    before = config.read_text()

    assert add_plugins(tmp_path / "p", ["LogInit"]).added == ()
    assert config.read_text() == before  # nothing added: the file is not even rewritten

    add_plugins(tmp_path / "p", ["MailsNote"], full=True)

    mail = read(config)["plugins_config"]["MailsNote"]  # type: ignore[index]
    assert mail["host"] == "smtp.lab.example" and mail["port"] == 465  # the user's, kept
    assert mail["timeout_s"] == 10 and mail["password_env"] == ""  # the missing keys, added


def test_one_bad_name_changes_nothing_and_no_name_is_refused(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p")
    before = config.read_text()

    with pytest.raises(PluginConfigError, match="unknown plugin 'Nope': the shipped plugins are"):
        add_plugins(tmp_path / "p", ["LogInit", "Nope"])
    with pytest.raises(ConfigError, match="no plugins given"):
        add_plugins(tmp_path / "p", [])

    assert config.read_text() == before


def test_a_plugin_file_is_listed_by_its_path_and_configured_under_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_project(tmp_path / "p")
    (tmp_path / "mine.py").write_text(
        "class DLNestPlugin:\n    _NAME = 'Mine'\n    _config = {'k': 1}\n    _defaultKeys = []\n"
    )
    monkeypatch.chdir(tmp_path)

    added = add_plugins(tmp_path / "p", ["mine.py"], full=True)

    assert added.added == (str(tmp_path / "mine.py"),)
    written = read(config)
    assert written["plugins"] == [str(tmp_path / "mine.py")]
    assert written["plugins_config"] == {"Mine": {"k": 1}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"plugins": "LogInit"}, "'plugins' must be a list of plugin names"),
        ({"plugins_config": []}, "'plugins_config' must be an object"),
    ],
)
def test_a_config_with_the_wrong_shape_is_named(
    tmp_path: Path, content: dict[str, object], message: str
) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "plugins_config.json").write_text(json.dumps(content))

    with pytest.raises(ConfigError, match=message) as caught:
        add_plugins(tmp_path / "p", ["LogInit"])
    assert "plugins_config.json" in str(caught.value)


def test_a_folder_that_is_no_project_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        add_plugins(tmp_path / "nope", ["LogInit"])
    with pytest.raises(
        ConfigError, match=r"holds neither plugins_config\.json nor root_config\.json"
    ):
        add_plugins(tmp_path, ["LogInit"])


@pytest.mark.parametrize("template", ["clean", "digits"])
def test_new_with_plugins_makes_a_project_whose_config_lists_them(
    tmp_path: Path, template: str
) -> None:
    names = ["LogInit", "SimpleCMDVisualize", "AutoTensorboardScalar", "MailsNote"]

    folder, added = new_project(tmp_path / "proj", template, names)

    assert added is not None and added.added == tuple(names)
    args = load_config(folder / "root_config.json").args
    assert args["plugins"] == names
    assert list(args["plugins_config"]) == names  # AutoTensorboardScalar: {}, as DLNest


def test_new_with_a_bad_plugin_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(PluginConfigError, match="unknown plugin"):
        new_project(tmp_path / "proj", "digits", ["LogInit", "[]"])
    assert not (tmp_path / "proj").exists()
    assert new_project(tmp_path / "proj", "clean")[1] is None  # no -p: no plugin, not "[]"
    assert "plugins" not in read(tmp_path / "proj" / "root_config.json")
