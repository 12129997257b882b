"""Plugin secrets stay out of what we show: the rule, the dry run, the branches, sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlnest_jupyter.core.dry_run import dry_run
from dlnest_jupyter.core.errors import RequestError
from dlnest_jupyter.core.package_state import Branch, PackageState, checkpoints_json
from dlnest_jupyter.core.secrets import (
    REDACTED,
    is_secret_key,
    redacted,
    scrubbed,
    secret_values,
    sweep_secret,
)
from dlnest_jupyter.core.sweep_space import space_from_flags, space_from_json

from ..projects import write_project

PASSWORD = "hunter2-smtp"
ARGS = {
    "epochs": 3,
    "password": "not a plugin's",  # outside plugins_config: the user's own key, shown
    "plugins": ["MailsNote"],
    "plugins_config": {
        "MailsNote": {"username": "me", "password": PASSWORD, "host": "localhost"},
        "Slack": {"apiToken": "xoxb-1234", "Client_SECRET": {"id": 7}, "tokens": ["t-5678"]},
        "Quiet": {"password": "", "token": None},
    },
}


def test_secret_keys_inside_plugin_configs_are_hidden_in_any_case() -> None:
    shown = redacted(ARGS)

    assert shown["plugins_config"] == {
        "MailsNote": {"username": "me", "password": REDACTED, "host": "localhost"},
        "Slack": {"apiToken": REDACTED, "Client_SECRET": REDACTED, "tokens": REDACTED},
        "Quiet": {"password": "", "token": None},  # nothing set: nothing to hide, and it says so
    }
    assert shown["password"] == "not a plugin's" and shown["epochs"] == 3
    assert ARGS["plugins_config"]["MailsNote"]["password"] == PASSWORD  # type: ignore[index]
    assert secret_values(ARGS) == {PASSWORD, "xoxb-1234", "7", "t-5678"}
    assert is_secret_key("plugins_config.MailsNote.password")
    assert not is_secret_key("plugins_config.password_plugin.host")  # a plugin's name is no key
    assert not is_secret_key("password")


def test_scrubbing_free_text_hides_each_secret_longest_first() -> None:
    text = f"args = {json.dumps(ARGS)}\nlogin {PASSWORD} ok; 7 epochs"

    shown = scrubbed(text, secret_values(ARGS))

    assert PASSWORD not in shown and "xoxb-1234" not in shown and "t-5678" not in shown
    assert "login *** ok; 7 epochs" in shown  # "7" is too short to scrub from free text


def test_a_dry_run_shows_secrets_as_stars(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p", args={"plugins_config": ARGS["plugins_config"]})

    lines = "\n".join(dry_run(config))

    assert PASSWORD not in lines and "xoxb-1234" not in lines
    assert "plugins_config.MailsNote.password = '***'" in lines
    assert "plugins_config.MailsNote.username = 'me'" in lines
    assert "plugins_config.Slack.Client_SECRET.id = '***'" in lines  # a dict: hidden whole
    assert json.loads(config.read_text())["plugins_config"]["MailsNote"]["password"] == PASSWORD


def test_a_branch_s_overrides_show_secrets_as_stars() -> None:
    overrides = {"plugins_config": {"MailsNote": {"password": PASSWORD}}, "epochs": 6}
    state = PackageState(branches={0: Branch(), 1: Branch(parent=0, overrides=overrides)})

    shown = json.dumps(checkpoints_json(state))

    assert PASSWORD not in shown
    assert checkpoints_json(state)["branches"][1]["overrides"] == {
        "plugins_config": {"MailsNote": {"password": REDACTED}},
        "epochs": 6,
    }


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("plugins_config.MailsNote.password", ["a", "b"]),
        ("plugins_config.MailsNote", [{"password": "a"}, {"password": "b"}]),
        ("plugins_config", [{"Slack": {"token": "x"}}]),
    ],
)
def test_sweeps_may_not_vary_a_secret(key: str, values: list[object]) -> None:
    assert sweep_secret(key, values)
    with pytest.raises(RequestError, match=f"sweep key '{key}' would vary a secret"):
        space_from_json({key: values}, None)
    with pytest.raises(RequestError, match="would vary a secret"):
        space_from_json(None, {key: {"choices": values}})


def test_sweeps_may_vary_what_is_not_secret() -> None:
    assert not sweep_secret("plugins_config.MailsNote.host", ["a", "b"])
    assert not sweep_secret("plugins_config.MailsNote", [{"password": "", "host": "a"}])
    space = space_from_flags(["plugins_config.SimpleCMDVisualize.stride=1,10"], [])
    assert space.grid_size == 2
    with pytest.raises(RequestError, match="would vary a secret"):
        space_from_flags([], ["plugins_config.X.token=choice:a,b"])


def test_a_secret_is_named_by_a_word_not_a_substring_and_an_env_name_is_none() -> None:
    from dlnest_jupyter.core.secrets import is_secret_name

    named = ["password", "api_token", "clientSecret", "tokens", "SMTP_PASSWORD"]
    not_named = ["tokenizer", "password_env", "passage", "secretary_name"]
    assert [is_secret_name(k) for k in named] == [True] * len(named)
    assert [is_secret_name(k) for k in not_named] == [False] * len(not_named)
