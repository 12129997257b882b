"""Requests that must fail, each with the status and message that says why: the bad-input corpus.

Shared by the server's bad-input test, the two-transport parity test and the dispatcher's own
tests. Paths are relative to the root `write_case_project` fills.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .projects import write_project

Case = tuple[str, str, str, Any, int, str]
TRAIN = {"kind": "train", "config_path": "proj/root_config.json"}

CASES: list[Case] = [
    # (id, method, target under /dlnest/api/, body (bytes: sent as they are), status, message)
    ("not json", "POST", "tasks", b"{kind: train", 400, "not valid JSON"),
    ("json array", "POST", "tasks", b"[1, 2]", 400, "must be a JSON object"),
    (
        "no kind",
        "POST",
        "tasks",
        {"config_path": "proj/root_config.json"},
        400,
        "missing field 'kind'",
    ),
    ("unknown kind", "POST", "tasks", {"kind": "dance"}, 400, "field 'kind' must be one of"),
    ("no config", "POST", "tasks", {"kind": "train"}, 400, "missing field 'config_path'"),
    (
        "unknown field",
        "POST",
        "tasks",
        {**TRAIN, "colour": "red"},
        400,
        "unknown field 'colour'",
    ),
    (
        "memory as text",
        "POST",
        "tasks",
        {**TRAIN, "memory_mb": "4000"},
        400,
        "field 'memory_mb' must be an integer",
    ),
    (
        "negative memory",
        "POST",
        "tasks",
        {**TRAIN, "memory_mb": -5},
        400,
        "field 'memory_mb' must be an integer >= 1",
    ),
    (
        "cpu as text",
        "POST",
        "tasks",
        {**TRAIN, "cpu": "yes"},
        400,
        "field 'cpu' must be true or false",
    ),
    (
        "jump as number",
        "POST",
        "tasks",
        {**TRAIN, "jump": 1},
        400,
        "field 'jump' must be true or false",
    ),
    (
        "absolute path outside",
        "POST",
        "tasks",
        {**TRAIN, "config_path": "/etc/passwd"},
        403,
        "outside the folders",
    ),
    (
        "dotdot escape",
        "POST",
        "tasks",
        {**TRAIN, "config_path": "../../etc/passwd"},
        403,
        "outside the folders",
    ),
    (
        "symlink escape",
        "POST",
        "tasks",
        {**TRAIN, "config_path": "escape/root_config.json"},
        403,
        "outside the folders",
    ),
    (
        "missing config",
        "POST",
        "tasks",
        {**TRAIN, "config_path": "proj/nope.json"},
        400,
        "config file does not exist",
    ),
    (
        "broken config",
        "POST",
        "tasks",
        {**TRAIN, "config_path": "proj/broken.json"},
        400,
        "broken.json:1:2: invalid JSON",
    ),
    (
        "missing class",
        "POST",
        "tasks",
        {**TRAIN, "config_path": "proj/bad_class.json"},
        400,
        "defines no such class",
    ),
    (
        "impossible memory",
        "POST",
        "tasks",
        {**TRAIN, "memory_mb": 20000},
        400,
        "largest GPU has 16384 MiB",
    ),
    (
        "no record path",
        "POST",
        "tasks",
        {"kind": "continue"},
        400,
        "missing field 'record_path'",
    ),
    (
        "not a package",
        "POST",
        "tasks",
        {"kind": "continue", "record_path": "proj"},
        400,
        "not a complete save package",
    ),
    (
        "checkpoint as text",
        "POST",
        "tasks",
        {"kind": "continue", "record_path": "proj", "checkpoint_id": "3"},
        400,
        "field 'checkpoint_id' must be an integer",
    ),
    ("unknown task", "GET", "tasks/999", None, 404, "no task with id 999"),
    ("delete unknown task", "DELETE", "tasks/999", None, 404, "no task with id 999"),
    ("output of unknown task", "GET", "tasks/999/output", None, 404, "no task with id 999"),
    (
        "settings devices not a list",
        "PUT",
        "settings",
        {"devices": "0,1"},
        400,
        "field 'devices' must be a list",
    ),
    (
        "settings max zero",
        "PUT",
        "settings",
        {"max_tasks_per_device": 0},
        400,
        "must be an integer >= 1",
    ),
    (
        "settings negative delay",
        "PUT",
        "settings",
        {"launch_delay_s": -1},
        400,
        "field 'launch_delay_s' must be a number from 0",
    ),
    ("settings unknown", "PUT", "settings", {"colour": "red"}, 400, "unknown field 'colour'"),
    (
        "project outside",
        "POST",
        "projects",
        {"path": "/tmp/elsewhere"},
        403,
        "outside the folders",
    ),
    (
        "project template",
        "POST",
        "projects",
        {"path": "p2", "template": "mnist"},
        400,
        "field 'template' must be one of",
    ),
    ("project exists", "POST", "projects", {"path": "proj"}, 400, "already exists"),
    ("project no path", "POST", "projects", {}, 400, "missing field 'path'"),
    (
        "oversized body",
        "POST",
        "tasks",
        b"{" + b" " * (2 * 1024 * 1024) + b"}",
        413,
        "the limit is",
    ),
    # Found by trying the API as an attacker would: each was a 500 once.
    ("nul in a path", "POST", "tasks", {**TRAIN, "config_path": "proj/\x00.json"}, 400,
     "field 'config_path' contains a NUL character"),
    ("lone surrogate in a path", "POST", "tasks",
     b'{"kind": "train", "config_path": "proj/\\ud800.json"}', 400,
     "field 'config_path' is not valid Unicode text"),
    ("over-long path", "POST", "tasks", {**TRAIN, "config_path": "ab/" * 2000}, 400,
     "field 'config_path' is 6000 bytes long"),
    ("over-long file name", "POST", "tasks", {**TRAIN, "config_path": "x" * 300 + ".json"}, 400,
     "field 'config_path' has a name longer than 255 bytes"),
    ("nul in a description", "POST", "tasks", {**TRAIN, "description": "a\x00b"}, 400,
     "field 'description' contains a NUL character"),
    ("megabyte description", "POST", "tasks", {**TRAIN, "description": "x" * 900_000}, 400,
     "field 'description' is 900000 characters long; the limit is 10000"),
    ("nul in a script name", "POST", "tasks/999/experiments", {"name": "a\x00"}, 400,
     "field 'name' contains a NUL character"),
    ("surrogate in a cell", "POST", "tasks/999/experiments", b'{"code": "\\udc80"}', 400,
     "field 'code' is not valid Unicode text"),
    ("deep nesting", "POST", "tasks", b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    ("not UTF-8", "POST", "tasks", b'{"kind": "\xff"}', 400, "not valid JSON"),
    ("a 5000-digit integer", "POST", "tasks", b'{"memory_mb": 1' + b"0" * 5000 + b"}", 400,
     "not valid JSON"),
    ("kind a list", "POST", "tasks", {"kind": []}, 400, "field 'kind' must be one of"),
    ("kind an object", "POST", "tasks", {"kind": {"a": 1}}, 400, "field 'kind' must be one of"),
    ("memory past 64 bits", "POST", "tasks", {**TRAIN, "memory_mb": 2**63}, 400,
     "field 'memory_mb' must be an integer >= 1"),
    ("task id past 64 bits", "GET", "tasks/9223372036854775808", None, 404,
     "no task with id '9223372036854775808'"),
    ("task id not a number", "GET", "tasks/no-such-task", None, 404,
     "no task with id 'no-such-task'"),
    ("experiment id not a number", "GET", "tasks/999/experiments/first", None, 404,
     "analyzer task 999 has no experiment 'first'"),
    ("unknown route", "GET", "nothing/here", None, 404, "no route /dlnest/api/nothing/here"),
    ("unknown route under a task", "GET", "tasks/x/nothing", None, 404,
     "no route /dlnest/api/tasks/x/nothing"),
    ("the bare prefix", "GET", "", None, 404, "no route /dlnest/api/; routes: devices"),
    ("wrong method", "PATCH", "tasks", {}, 405, "/dlnest/api/tasks takes GET, POST, not PATCH"),
    ("since not a number", "GET", "tasks?since=yesterday", None, 400,
     "since must be a non-negative integer below 2**63, got 'yesterday'"),
    ("metrics of an unknown task", "GET", "tasks/999/metrics", None, 404, "no task with id 999"),
    ("metrics from a negative offset", "GET", "tasks/999/metrics?offset=-3", None, 400,
     "offset must be a non-negative integer"),
    ("offset past 64 bits", "GET", "tasks/999/output?offset=" + "1" + "0" * 23, None, 400,
     "offset must be a non-negative integer below 2**63"),
    ("offset a superscript two", "GET", "log?offset=%C2%B2", None, 400,
     "offset must be a non-negative integer below 2**63, got '²'"),
    ("wait_s not a number", "GET", "tasks/999/experiments/1?wait_s=nan", None, 400,
     "wait_s must be a number of seconds from 0 to 30"),
    ("settings NaN", "PUT", "settings", b'{"launch_delay_s": NaN}', 400,
     "NaN is not a JSON number"),
    ("settings Infinity", "PUT", "settings", b'{"starvation_s": Infinity}', 400,
     "Infinity is not a JSON number"),
    ("settings 2**70 seconds", "PUT", "settings", {"starvation_s": 2**70}, 400,
     "field 'starvation_s' must be a number from 0"),
    ("settings 2**70 tasks", "PUT", "settings", {"max_tasks_per_device": 2**70}, 400,
     "field 'max_tasks_per_device' must be an integer >= 1"),
    ("settings a device past 64 bits", "PUT", "settings", {"devices": [2**64]}, 400,
     "field 'devices' must be a list of device ids"),
    ("scripts folder missing", "POST", "tasks",
     {"kind": "analyze", "record_path": "proj", "scripts_dir": "proj/nope"}, 400,
     "field 'scripts_dir': "),
    ("scripts folder a file", "POST", "tasks",
     {"kind": "analyze", "record_path": "proj", "scripts_dir": "proj/root_config.json"}, 400,
     "root_config.json is not a folder"),
]  # fmt: skip


def write_case_project(root: Path, outside: Path) -> Path:
    """`root/proj`, with a broken config, one naming a missing class, and an escaping symlink."""
    config = write_project(root / "proj")
    (config.parent / "broken.json").write_text("{oops")
    (config.parent / "typo_freq.json").write_text(json.dumps({"epoch": 2}))  # "epochs" meant
    args = json.loads(config.read_text())
    (config.parent / "bad_class.json").write_text(json.dumps({**args, "runner_name": "Missing"}))
    write_project(outside)
    os.symlink(outside, root / "escape")
    return config
