"""Argument parsing shared by the `%dlnest` commands: errors as one line, paths as the user means."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.errors import DLNestError


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel
        raise DLNestError(f"{self.prog}: {message}")


def placement_parser(prog: str) -> ArgumentParser:
    parser = ArgumentParser(prog=prog)
    parser.add_argument("-d", help="description")
    parser.add_argument("-m", type=int, help="estimated GPU memory in MiB")
    parser.add_argument("-mc", action="store_true", help="several cards")
    parser.add_argument("-DDP", action="store_true")
    parser.add_argument("-CPU", action="store_true")
    parser.add_argument("-j", action="store_true", help="jump to the front of the queue")
    return parser


def task_id_argument(argv: list[str], command: str) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        raise DLNestError(f"{command} takes one task id, e.g. %dlnest {command} 3")
    return int(argv[0])


def absolute_path(path: str) -> str:
    # The server resolves relative paths against its root; the user means the kernel's cwd.
    return str(Path(path).expanduser().resolve())
