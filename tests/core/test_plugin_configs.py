"""The shipped plugins' configs as DLNest has them, and a user's plugin file read without running it."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from dlnest_jupyter.core.errors import ConfigError, PluginConfigError
from dlnest_jupyter.core.plugin_configs import SHIPPED, SHIPPED_NAMES, plugin_config

DLNEST_MIRROR = Path("/work/.mirror/SymenYang+DLNest/repo")


def test_the_four_shipped_plugins_have_dlnests_configs_and_default_keys() -> None:
    assert SHIPPED_NAMES == ("LogInit", "SimpleCMDVisualize", "AutoTensorboardScalar", "MailsNote")
    assert plugin_config("LogInit", full=False) == ("LogInit", {"LogInit": {"level": "INFO"}})
    assert plugin_config("LogInit", full=True)[1]["LogInit"] == {
        "level": "INFO",
        "format": "[%(asctime)s][%(levelname)s] %(message)s",
        "datefmt": "%Y-%m-%d %H:%M:%S",
    }
    visualize = {"stride": 1, "keys": [], "format": {}}
    assert plugin_config("SimpleCMDVisualize", full=False)[1] == {"SimpleCMDVisualize": visualize}
    assert plugin_config("AutoTensorboardScalar", full=True) == (
        "AutoTensorboardScalar",
        {"AutoTensorboardScalar": {}},
    )


def test_mails_note_defaults_to_localhost_and_offers_an_environment_password() -> None:
    _, full = plugin_config("MailsNote", full=True)
    assert full["MailsNote"] == {
        "enable_list": ["Aborting", "TrainFinish"],
        "username": "",
        "password": "",
        "host": "localhost",
        "port": 25,
        "password_env": "",
        "timeout_s": 10,
    }
    _, default = plugin_config("MailsNote", full=False)
    assert list(default["MailsNote"]) == [
        "enable_list",
        "username",
        "password",
        "host",
        "password_env",
    ]


def test_a_config_handed_out_is_a_copy_the_caller_may_change() -> None:
    _, first = plugin_config("MailsNote", full=True)
    first["MailsNote"]["enable_list"].append("SOTA")
    assert SHIPPED["MailsNote"].value("enable_list") == ["Aborting", "TrainFinish"]
    assert plugin_config("MailsNote", full=True)[1]["MailsNote"]["enable_list"] == [
        "Aborting",
        "TrainFinish",
    ]
    with pytest.raises(TypeError):
        SHIPPED["LogInit"].full["level"] = "DEBUG"  # type: ignore[index]


@pytest.mark.skipif(not DLNEST_MIRROR.exists(), reason="DLNest's source is not mirrored here")
@pytest.mark.parametrize("name", ["LogInit", "SimpleCMDVisualize", "AutoTensorboardScalar"])
def test_shipped_configs_match_dlnest_0_3_2_read_from_its_source(name: str, tmp_path: Path) -> None:
    source = subprocess.run(
        ["git", "-C", str(DLNEST_MIRROR), "show", f"0.3.2:DLNest/Plugins/{name}.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / f"{name}.py").write_text(source)
    for full in (False, True):
        assert plugin_config(str(tmp_path / f"{name}.py"), full) == plugin_config(name, full)


def test_unknown_names_are_refused_naming_the_shipped_ones() -> None:
    with pytest.raises(PluginConfigError) as caught:
        plugin_config("Mails", full=False)
    message = str(caught.value)
    assert "unknown plugin 'Mails'" in message
    assert "LogInit, SimpleCMDVisualize, AutoTensorboardScalar, MailsNote" in message
    assert isinstance(caught.value, ConfigError)  # a 400 over REST, exit 2 from `dlnest`


def write_plugin(folder: Path, body: str, name: str = "my_plugin.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def test_a_user_plugin_is_read_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    plugin = write_plugin(
        tmp_path,
        f"""
        from DLNest.Plugins.DLNestPluginBase import DLNestPluginBase as DPB
        open({str(marker)!r}, "w").write("ran")  # must never happen

        class DLNestPlugin(DPB):
            _NAME = "Slack"
            _config: dict = {{"channel": "#runs", "token": "", "every": 10}}
            _defaultKeys = ["channel", "token"]

            def ATrain(self):
                pass
        """,
    )
    assert plugin_config(str(plugin), full=False) == (
        "Slack",
        {"Slack": {"channel": "#runs", "token": ""}},
    )
    assert plugin_config(str(plugin), full=True)[1]["Slack"]["every"] == 10
    assert not marker.exists()


def test_dlnests_base_supplies_an_empty_config_and_a_base_in_the_file_one_level(
    tmp_path: Path,
) -> None:
    bare = write_plugin(
        tmp_path,
        """
        import DLNest.Plugins.DLNestPluginBase
        class DLNestPlugin(DLNest.Plugins.DLNestPluginBase.DLNestPluginBase):
            _NAME = "Bare"
        """,
    )
    assert plugin_config(str(bare), full=True) == ("Bare", {"Bare": {}})
    mixin = write_plugin(
        tmp_path,
        """
        class Common:
            _config = {"a": 1, "b": 2}
            _defaultKeys = ["a"]
            _NAME = "Common"

        class DLNestPlugin(Common):
            _NAME = "Derived"
        """,
        "mixin.py",
    )
    assert plugin_config(str(mixin), full=False) == ("Derived", {"Derived": {"a": 1}})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("class Other:\n    pass\n", "defines no top-level class DLNestPlugin"),
        ("class DLNestPlugin:\n    _config = {}\n", "sets no _NAME or _defaultKeys"),
        (
            "from elsewhere import Base\nclass DLNestPlugin(Base):\n    _NAME = 'X'\n",
            "its bases (Base) do not in this file",
        ),
        (
            "import os\nclass DLNestPlugin:\n    _NAME = 'X'\n    _defaultKeys = []\n"
            "    _config = {'home': os.environ['HOME']}\n",
            "DLNestPlugin._config is not a literal (line 5)",
        ),
        (
            "class DLNestPlugin:\n    _NAME = 'X'\n    _config = {'a': 1}\n    _defaultKeys = ['b']\n",
            "_defaultKeys names 'b', which _config does not hold",
        ),
        (
            "class DLNestPlugin:\n    _NAME = ''\n    _config = {}\n    _defaultKeys = []\n",
            "_NAME must be a non-empty string",
        ),
        (
            "class DLNestPlugin:\n    _NAME = 'X'\n    _config = {1: 2}\n    _defaultKeys = []\n",
            "_config must be a dict with string keys",
        ),
        ("class DLNestPlugin(:\n", "invalid Python"),
    ],
)
def test_what_cannot_be_read_is_refused_naming_the_file(
    tmp_path: Path, body: str, message: str
) -> None:
    plugin = write_plugin(tmp_path, body)
    with pytest.raises(PluginConfigError) as caught:
        plugin_config(str(plugin), full=False)
    assert str(caught.value).startswith(str(plugin))
    assert message in str(caught.value)


def test_a_missing_plugin_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PluginConfigError, match=r"nope\.py: cannot read plugin file"):
        plugin_config(str(tmp_path / "nope.py"), full=False)
