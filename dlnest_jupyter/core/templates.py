"""`new`: start a project from a bundled template."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import ConfigError

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE_NAMES = ("clean", "digits")
DEFAULT_TEMPLATE = "clean"


def new_project(target: Path | str, template: str = DEFAULT_TEMPLATE) -> Path:
    """Copy `template` into `target`, which must not exist or be an empty folder."""
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
    return folder
