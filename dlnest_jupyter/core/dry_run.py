"""What `run --dry-run` shows, for the `dlnest` command and the `%dlnest` magic alike: the merged
config, which file set each key, and the warnings a submission would give. Nothing is created.
Plugin secrets (an SMTP password) show as "***" (core/secrets.py): a dry run's lines end up in
notebooks that are shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .checkpoints import TrackLimits
from .config import LoadedConfig, load_config
from .secrets import redacted


def checked_config(root_path: Path | str, freq_path: Path | str | None = None) -> LoadedConfig:
    """`load_config`, and the checkpoint limits checked (a bad one names its key and file)."""
    loaded = load_config(root_path, freq_path)
    TrackLimits.from_args(loaded.args, loaded.blame("checkpoint_args"))
    return loaded


def dry_run(root_path: Path | str, freq_path: Path | str | None = None) -> list[str]:
    """The report's lines: files in load order, each key with its value and file, warnings."""
    loaded = checked_config(root_path, freq_path)
    shown = redacted(loaded.args)
    lines = [f"# files, in load order: {', '.join(str(f) for f in loaded.files)}"]
    for key in sorted(loaded.provenance):
        lines.append(f"{key} = {_lookup(shown, key)!r}    # {loaded.provenance[key]}")
    return lines + [f"# warning: {warning}" for warning in loaded.warnings]


def _lookup(args: Mapping[str, Any], dotted: str) -> Any:
    value: Any = args
    for part in dotted.split("."):
        if not isinstance(value, Mapping):  # a redacted secret that was itself a dict
            return value
        value = value[part]
    return value
