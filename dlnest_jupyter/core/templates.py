"""`new`: start a project from a bundled template."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError
from .project_plugins import PluginsAdded, add_resolved, resolve_plugins

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE_NAMES = ("clean", "digits")
DEFAULT_TEMPLATE = "clean"


def new_project(
    target: Path | str,
    template: str = DEFAULT_TEMPLATE,
    plugins: Sequence[str] = (),
    full: bool = False,
) -> tuple[Path, PluginsAdded | None]:
    """Copy `template` into `target`, which must not exist or be an empty folder, then add
    `plugins` (DLNest's `new -p`, core/project_plugins.py); the plugins are checked first, so a
    bad name creates nothing. Returns the folder, and what was added (None: no plugins)."""
    resolved = resolve_plugins(plugins, full) if plugins else []
    if template not in TEMPLATE_NAMES:
        raise ConfigError(
            f"unknown template {template!r}; choose one of {', '.join(TEMPLATE_NAMES)}"
        )
    folder = Path(target).expanduser().resolve()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(
            "already exists and is not an empty folder; choose a new path", file=folder
        )
    shutil.copytree(
        TEMPLATES_DIR / template,
        folder,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return folder, add_resolved(folder, resolved) if resolved else None
