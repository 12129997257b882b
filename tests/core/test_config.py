from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.core.config import load_config
from dlnest_jupyter.core.errors import ConfigError


def write(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value) if not isinstance(value, str) else value)
    return path


def test_children_load_depth_first_pre_order_and_later_files_win(tmp_path: Path) -> None:
    root = write(
        tmp_path / "root.json",
        {"order": ["root"], "a": "root", "b": "root", "child_jsons": ["c1.json", "c2.json"]},
    )
    write(tmp_path / "c1.json", {"a": "c1", "b": "c1", "c": "c1", "child_jsons": ["c1child.json"]})
    write(tmp_path / "c1child.json", {"b": "c1child", "d": "c1child"})
    write(tmp_path / "c2.json", {"c": "c2"})

    loaded = load_config(root)

    assert loaded.args == {"order": ["root"], "a": "c1", "b": "c1child", "c": "c2", "d": "c1child"}
    assert [p.name for p in loaded.files] == ["root.json", "c1.json", "c1child.json", "c2.json"]


def test_later_sibling_overrides_the_whole_subtree_of_an_earlier_one(tmp_path: Path) -> None:
    root = write(tmp_path / "root.json", {"child_jsons": ["c1.json", "c2.json"]})
    write(tmp_path / "c1.json", {"x": 1, "child_jsons": ["deep.json"]})
    write(tmp_path / "deep.json", {"x": 2})
    write(tmp_path / "c2.json", {"x": 3})

    assert load_config(root).args["x"] == 3


def test_relative_child_resolves_against_the_folder_of_the_file_naming_it(tmp_path: Path) -> None:
    root = write(tmp_path / "root.json", {"child_jsons": ["sub/child.json"]})
    write(tmp_path / "sub" / "child.json", {"from": "sub", "child_jsons": ["grand.json"]})
    write(tmp_path / "sub" / "grand.json", {"grand": True})
    write(tmp_path / "grand.json", {"grand": "wrong folder"})

    assert load_config(root).args == {"from": "sub", "grand": True}


def test_lists_are_replaced_not_merged(tmp_path: Path) -> None:
    root = write(tmp_path / "root.json", {"layers": [1, 2, 3], "child_jsons": ["c.json"]})
    write(tmp_path / "c.json", {"layers": [9]})

    assert load_config(root).args["layers"] == [9]


def test_dicts_merge_key_by_key_recursively(tmp_path: Path) -> None:
    root = write(
        tmp_path / "root.json",
        {"opt": {"lr": 1, "inner": {"a": 1, "b": 2}}, "child_jsons": ["c.json"]},
    )
    write(tmp_path / "c.json", {"opt": {"inner": {"b": 3}, "wd": 0.1}})

    assert load_config(root).args["opt"] == {"lr": 1, "inner": {"a": 1, "b": 3}, "wd": 0.1}


def test_dict_over_scalar_replaces_it_where_dlnest_crashed(tmp_path: Path) -> None:
    root = write(tmp_path / "root.json", {"n": 3, "s": "text", "child_jsons": ["c.json"]})
    write(tmp_path / "c.json", {"n": {"value": 4}, "s": {"value": "x"}})

    assert load_config(root).args == {"n": {"value": 4}, "s": {"value": "x"}}


def test_scalar_over_dict_replaces_it_and_forgets_the_old_provenance(tmp_path: Path) -> None:
    root = write(tmp_path / "root.json", {"opt": {"lr": 1}, "child_jsons": ["c.json"]})
    child = write(tmp_path / "c.json", {"opt": None})

    loaded = load_config(root)
    assert loaded.args == {"opt": None}
    assert loaded.provenance == {"opt": child.resolve()}


def test_freq_config_applies_last_with_its_own_children(tmp_path: Path) -> None:
    root = write(tmp_path / "root.json", {"lr": 1, "epochs": 5, "child_jsons": ["c.json"]})
    write(tmp_path / "c.json", {"lr": 2, "batch": 8})
    freq = write(tmp_path / "freq.json", {"lr": 3, "child_jsons": ["fchild.json"]})
    write(tmp_path / "fchild.json", {"batch": 16})

    loaded = load_config(root, freq)

    assert loaded.args == {"lr": 3, "epochs": 5, "batch": 16}
    assert loaded.files[-2:] == (freq.resolve(), (tmp_path / "fchild.json").resolve())


def test_provenance_names_the_file_that_set_each_leaf_last(tmp_path: Path) -> None:
    root = write(
        tmp_path / "root.json", {"lr": 1, "opt": {"a": 1, "b": 2}, "child_jsons": ["c.json"]}
    )
    child = write(tmp_path / "c.json", {"opt": {"b": 3}})
    freq = write(tmp_path / "freq.json", {"lr": 9})

    loaded = load_config(root, freq)

    assert loaded.provenance == {
        "lr": freq.resolve(),
        "opt.a": root.resolve(),
        "opt.b": child.resolve(),
    }
    assert "child_jsons" not in loaded.args


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    root = write(tmp_path / "root.json", {"child_jsons": ["bad.json"]})
    bad = write(tmp_path / "bad.json", '{\n  "a": 1,\n  "b": oops\n}')

    with pytest.raises(ConfigError) as caught:
        load_config(root)

    assert caught.value.file == bad.resolve()
    assert (caught.value.line, caught.value.column) == (3, 8)
    assert f"{bad.resolve()}:3:8" in str(caught.value)


def test_missing_child_names_the_parent_and_the_child(tmp_path: Path) -> None:
    root = write(tmp_path / "root.json", {"child_jsons": ["nowhere.json"]})

    with pytest.raises(ConfigError, match=r"nowhere\.json does not exist") as caught:
        load_config(root)
    assert caught.value.file == root.resolve()


def test_cycle_in_child_jsons_is_an_error_naming_the_chain(tmp_path: Path) -> None:
    root = write(tmp_path / "root.json", {"child_jsons": ["a.json"]})
    write(tmp_path / "a.json", {"child_jsons": ["b.json"]})
    write(tmp_path / "b.json", {"child_jsons": ["a.json"]})

    with pytest.raises(ConfigError, match=r"cycle: .*a\.json -> .*b\.json -> .*a\.json"):
        load_config(root)


def test_the_same_child_twice_without_a_cycle_is_allowed(tmp_path: Path) -> None:
    root = write(
        tmp_path / "root.json",
        {"x": 0, "child_jsons": ["shared.json", "other.json", "shared.json"]},
    )
    write(tmp_path / "shared.json", {"x": 1})
    write(tmp_path / "other.json", {"x": 2})

    assert load_config(root).args["x"] == 1


def test_missing_root_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file does not exist"):
        load_config(tmp_path / "absent.json")
    with pytest.raises(ConfigError, match="config file is a folder, not a JSON file"):
        load_config(tmp_path)


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', "3"])
def test_a_config_that_is_not_an_object_is_an_error(tmp_path: Path, content: str) -> None:
    with pytest.raises(ConfigError, match="must be a JSON object"):
        load_config(write(tmp_path / "root.json", content))


def test_child_jsons_must_be_a_list_of_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="child_jsons must be a list"):
        load_config(write(tmp_path / "root.json", {"child_jsons": "c.json"}))


def test_freq_keys_the_config_lacks_are_warned_of_with_the_nearest_key(tmp_path: Path) -> None:
    root = write(
        tmp_path / "root.json",
        {"lr": 0.1, "epochs": 8, "optim": {"momentum": 0.9, "betas": [1, 2]}, "tag": "x"},
    )
    freq = write(
        tmp_path / "freq.json",
        {"lrr": 0.01, "epochs": 2, "optim": {"momentun": 0.5}, "child_jsons": ["more.json"]},
    )
    write(tmp_path / "more.json", {"epoch": 3, "tag": {"new": 1}, "zzz_unrelated": 1})

    loaded = load_config(root, freq)

    assert loaded.warnings == (
        f"'lrr' in {freq} is not a key of the config; the nearest key is 'lr'",
        f"'optim.momentun' in {freq} is not a key of the config; the nearest key is 'optim.momentum'",
        f"'epoch' in {tmp_path / 'more.json'} is not a key of the config; the nearest key is 'epochs'",
        f"'zzz_unrelated' in {tmp_path / 'more.json'} is not a key of the config",
    )
    # The run still goes, with the freq values laid over: provenance names each freq file.
    assert loaded.args["lrr"] == 0.01 and loaded.args["optim"] == {
        "momentum": 0.9,
        "betas": [1, 2],
        "momentun": 0.5,
    }
    assert loaded.provenance["epoch"] == tmp_path / "more.json"
    assert loaded.provenance["epochs"] == freq and loaded.files[-2:] == (
        freq,
        tmp_path / "more.json",
    )
    assert load_config(root).warnings == ()


def test_a_freq_key_that_lives_in_a_child_configs_object_is_pointed_at_there(
    tmp_path: Path,
) -> None:
    # The digits template keeps its hyper-parameters under model_config (a child config).
    root = write(tmp_path / "root.json", {"epochs": 8, "model_config": {"lr": 0.003}})
    freq = write(tmp_path / "freq.json", {"lr": 0.01, "lrr": 0.02})

    loaded = load_config(root, freq)

    assert loaded.warnings == (
        f"'lr' in {freq} is not a key of the config; the nearest key is 'model_config.lr'",
        f"'lrr' in {freq} is not a key of the config; the nearest key is 'model_config.lr'",
    )
