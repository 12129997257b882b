"""The `%dlnest` commands' arguments: one parser per verb, each flag explained in its `-h`.

A parser here never ends the kernel: a bad argument is a DLNestError (one line), and `-h`
prints the help and raises HelpShown, which the magic takes as "done".
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ..core.errors import DLNestError
from ..core.placement_values import DEFAULT_MEMORY_TEXT
from ..core.plugin_configs import is_plugin_file
from ..core.project_plugins import FULL_HELP, PLUGINS_HELP
from ..core.sweeps import DEFAULT_OBJECTIVE, DEFAULT_PRUNE, DIRECTIONS, OBJECTIVES, PRUNE_RULES
from ..core.templates import DEFAULT_TEMPLATE, TEMPLATE_NAMES


class HelpShown(Exception):
    """`-h` printed a command's help; the command does nothing more."""


class ArgumentParser(argparse.ArgumentParser):
    def __init__(self, command: str, description: str) -> None:
        super().__init__(prog=f"%dlnest {command}", description=description)
        self.command = command

    def add_argument(self, *names: Any, **options: Any) -> argparse.Action:
        if options.get("help"):  # argparse %-formats help: our texts say "90%" and "%dlnest"
            options["help"] = options["help"].replace("%", "%%")
        return super().add_argument(*names, **options)

    def error(self, message: str) -> NoReturn:  # argparse would exit the kernel
        raise DLNestError(f"{self.command}: {message}")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        for token in args or ():
            self._refuse_glued(str(token))
        return super().parse_args(args, namespace)

    def _refuse_glued(self, token: str) -> None:
        """argparse reads `-devices` as `-d evices` (a value glued to a one-letter option): a
        DLNest flag or a typo would silently become a description. Refused by name instead."""
        known = self._option_string_actions
        if token in known or token.startswith("--") or token[:2] not in known or len(token) < 3:
            return
        if token.lstrip("-").replace(".", "", 1).isdigit():
            return  # a negative number, as a value
        if token == "-devices":
            self.error(
                "-devices is the dlnest command's: in the queue the scheduler picks the card "
                "(use -m MB, or changeDevices to choose which cards it may use)"
            )
        self.error(f"unknown option {token} (for {token[:2]} with a value, leave a space)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        # Only -h gets here (errors go through error()): its help is printed; end quietly.
        if message:
            print(message, end="")
        raise HelpShown


_DEFAULT_MEMORY = f"default: {DEFAULT_MEMORY_TEXT}"


def _placement(parser: ArgumentParser, cards: bool = True) -> ArgumentParser:
    """The flags every submission shares: description, memory, CPU, queue jump (and cards)."""
    parser.add_argument("-d", metavar="DESC", help="description, shown in the queue")
    parser.add_argument(
        "-m",
        type=int,
        metavar="MB",
        help=f"GPU memory to reserve in MiB ({_DEFAULT_MEMORY}, so one task per card)",
    )
    if cards:
        parser.add_argument(
            "-mc", action="store_true", help="may use several cards whose memory covers -m"
        )
        parser.add_argument(
            "-DDP",
            action="store_true",
            help="DistributedDataParallel: one process per card (implies -mc)",
        )
    parser.add_argument("-CPU", action="store_true", help="run on the CPU, not a GPU")
    parser.add_argument("-j", action="store_true", help="jump to the front of the queue")
    return parser


def run_parser() -> ArgumentParser:
    parser = ArgumentParser("run", "Queue a training run of a project: its code and merged "
                            "config are copied into a new save package, which runs when placed.")  # fmt: skip
    parser.add_argument("-c", required=True, metavar="ROOT", help="root config (root_config.json)")
    parser.add_argument(
        "-f", metavar="FREQ", help="frequently-changed config, laid over the root config last"
    )
    parser.add_argument(
        "-ns",
        action="store_true",
        help="save into the NOSAVE scratch package, replaced each time (NOSAVE_2, ... while"
        " a queued or running task uses it)",
    )
    parser.add_argument(
        "-sd", action="store_true", help="name the save package after the description (-d)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the merged config and which file set each key; queue nothing",
    )
    return _placement(parser)


def continue_parser() -> ArgumentParser:
    parser = ArgumentParser("continue", "Queue more training of a save package, from one of "
                            "its checkpoints, with its own copy of the code and config.")  # fmt: skip
    parser.add_argument("-r", required=True, metavar="PKG", help="save package folder")
    parser.add_argument(
        "-c", type=int, metavar="ID", help="checkpoint id (default: the latest of its branch)"
    )
    parser.add_argument(
        "-f",
        metavar="FREQ",
        help="a config laid over the checkpoint's, for a branch of its own (args.json stays)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="train until epoch N in total (the config's `epochs` key; N past the checkpoint's)",
    )
    return _placement(parser)


def analyze_parser() -> ArgumentParser:
    parser = ArgumentParser("analyze", "Queue an analyzer: a kernel that loads a save package's "
                            "model and dataset once and runs experiments against them.")  # fmt: skip
    parser.add_argument("-r", required=True, metavar="PKG", help="save package folder")
    parser.add_argument("-c", type=int, metavar="ID", help="checkpoint id (default: the latest)")
    parser.add_argument(
        "-s",
        metavar="DIR",
        help="scripts folder for runExp (default: the project's AnalyzeScripts)",
    )
    return _placement(parser, cards=False)


def sweep_parser() -> ArgumentParser:
    parser = ArgumentParser("sweep", "Run a project many times with config values changed: every "
                            "point of a grid, or an Optuna search; each trial is a run of its own.")  # fmt: skip
    parser.add_argument("-c", required=True, metavar="ROOT", help="root config (root_config.json)")
    parser.add_argument("-f", metavar="FREQ", help="a config laid over the root config first")
    parser.add_argument("-d", metavar="DESC", help="description, shown with each trial")
    parser.add_argument(
        "-m", type=int, metavar="MB", help=f"GPU memory each trial reserves ({_DEFAULT_MEMORY})"
    )
    parser.add_argument("-CPU", action="store_true", help="run the trials on the CPU")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="every combination of these values (dotted config keys; values as JSON, else text)",
    )
    parser.add_argument(
        "--search",
        action="append",
        default=[],
        metavar="KEY=DIST",
        help="search KEY: uniform:LO:HI, loguniform:LO:HI, int:LO:HI or choice:A,B,C",
    )
    parser.add_argument("--trials", type=int, metavar="N", help="trials in all (a search needs it)")
    parser.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="at most N trials queued or running at once (default: as many as the cards hold)",
    )
    parser.add_argument("--metric", metavar="KEY", help="the _metrics.jsonl value to judge by")
    parser.add_argument(
        "--direction",
        choices=DIRECTIONS,
        help="default: minimize for a loss or error, else maximize",
    )
    parser.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=DEFAULT_OBJECTIVE,
        help="a trial's value: its best epoch (default) or its last",
    )
    parser.add_argument(
        "--prune",
        choices=PRUNE_RULES,
        default=DEFAULT_PRUNE,
        help="stop trials whose metric lags the others' (needs --metric)",
    )
    parser.add_argument("--seed", type=int, metavar="S", help="the search's random seed")
    return parser


def del_parser() -> ArgumentParser:
    parser = ArgumentParser("del", "Cancel a queued task, stop a running one, or end an analyzer; "
                            "`del sweep ID` stops a sweep's trials and queues no more.")  # fmt: skip
    parser.add_argument("words", nargs="+", metavar="ID | sweep ID", help="what to stop")
    return parser


def run_exp_parser() -> ArgumentParser:
    parser = ArgumentParser("runExp", "Run DIR/NAME.py's experience(self) in an analyzer; "
                            "interrupting the cell interrupts it, the model stays loaded.")  # fmt: skip
    parser.add_argument(
        "words",
        nargs="+",
        metavar="[ID] NAME",
        help="the analyzer's task id (default: the one this kernel started last, else the only "
        "one running) and the script's name without .py",
    )
    return parser


def _optional_id(command: str, description: str, what: str) -> Callable[[], ArgumentParser]:
    def make() -> ArgumentParser:
        parser = ArgumentParser(command, description)
        parser.add_argument("id", type=int, nargs="?", metavar="ID", help=what)
        return parser

    return make


def _one_id(command: str, description: str) -> Callable[[], ArgumentParser]:
    def make() -> ArgumentParser:
        parser = ArgumentParser(command, description)
        parser.add_argument("id", type=int, metavar="ID", help="the task's id (%dlnest tasks)")
        return parser

    return make


def _bare(command: str, description: str) -> Callable[[], ArgumentParser]:
    return lambda: ArgumentParser(command, description)


RECENT_ENDED_SHOWN = 20  # `%dlnest tasks` without --all: the queue, and this many ended tasks


def tasks_parser() -> ArgumentParser:
    parser = ArgumentParser(
        "tasks",
        "The queue: its queued and running tasks and the last ended ones, each with its state,"
        " devices, memory and progress.",
    )
    parser.add_argument(
        "-n",
        type=count,
        default=RECENT_ENDED_SHOWN,
        metavar="N",
        help=f"how many of the last ended tasks to show (default {RECENT_ENDED_SHOWN})",
    )
    parser.add_argument("--all", action="store_true", help="every task, however old")
    return parser


def count(text: str) -> int:
    number = int(text)  # argparse names the function: "invalid count value: 'x'"
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is below 0")
    return number


def change_devices_parser() -> ArgumentParser:
    parser = ArgumentParser("changeDevices", "Choose which devices the scheduler may use.")
    parser.add_argument(
        "-d", type=int, nargs="+", required=True, metavar="ID", help="device ids (-1 is the CPU)"
    )
    return parser


def settings_parser() -> ArgumentParser:
    parser = ArgumentParser("settings", "Show the queue's settings, or change some of them.")
    parser.add_argument(
        "--max", type=int, dest="max_tasks_per_device", metavar="N", help="tasks per card at most"
    )
    parser.add_argument(
        "--delay",
        type=float,
        dest="launch_delay_s",
        metavar="S",
        help="seconds between two launches on one card",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        dest="memory_warmup_steps",
        metavar="N",
        help="steps (or one whole epoch) before a run's reservation shrinks to its peak",
    )
    parser.add_argument(
        "--margin-pct",
        type=float,
        dest="memory_margin_pct",
        metavar="P",
        help="margin over a peak, %%",
    )
    parser.add_argument(
        "--margin-mb",
        type=int,
        dest="memory_margin_mb",
        metavar="MB",
        help="margin over a peak, MiB",
    )
    parser.add_argument(
        "--shrink-given",
        choices=("on", "off"),
        help="shrink what -m reserved too, once measured",
    )
    parser.add_argument(
        "--guard",
        choices=("on", "off"),
        dest="guard_memory",
        help="cap each run's CUDA allocator at its reservation plus the margin",
    )
    parser.add_argument(
        "--oom-retries",
        type=int,
        dest="oom_retries",
        metavar="N",
        help="times a run out of GPU memory is queued again with more",
    )
    return parser


def new_parser() -> ArgumentParser:
    parser = ArgumentParser("new", "Start a project from a template.")
    parser.add_argument("-d", required=True, metavar="DIR", help="folder to create")
    parser.add_argument(
        "-t",
        choices=TEMPLATE_NAMES,
        default=DEFAULT_TEMPLATE,
        help=f"template (default: {DEFAULT_TEMPLATE})",
    )
    parser.add_argument("-MNIST", action="store_true", help="DLNest's flag: the digits template")
    parser.add_argument("-p", nargs="+", action="extend", metavar="PLUGIN", help=PLUGINS_HELP)
    return parser


def add_plugins_parser() -> ArgumentParser:
    parser = ArgumentParser("addP", "Add plugins and their configs to a project's config "
                            "(plugins_config.json, else root_config.json).")  # fmt: skip
    parser.add_argument("-d", required=True, metavar="DIR", help="the project's folder")
    parser.add_argument(
        "-p", nargs="+", action="extend", required=True, metavar="PLUGIN", help=PLUGINS_HELP
    )
    parser.add_argument("-F", action="store_true", help=FULL_HELP)
    return parser


PARSERS: dict[str, Callable[[], ArgumentParser]] = {
    "run": run_parser,
    "continue": continue_parser,
    "analyze": analyze_parser,
    "runExp": run_exp_parser,
    "exp": _optional_id(
        "exp",
        "%%dlnest exp [ID]: run the cell's code in an analyzer (self, model, dataset, args).",
        "the analyzer's task id (default: as runExp's)",
    ),
    "attach": _optional_id(
        "attach",
        "How to open an analyzer's kernel from JupyterLab or a console.",
        "the analyzer's task id (default: as runExp's)",
    ),
    "del": del_parser,
    "sweep": sweep_parser,
    "sweeps": _optional_id(
        "sweeps",
        "The sweeps; with an id, that sweep's trials, best first.",
        "the sweep's id (default: every sweep)",
    ),
    "checkpoints": _optional_id(
        "checkpoints",
        "A task's package's checkpoints by branch: what `continue -c` and `analyze -c` take.",
        "the task (default: the one this kernel submitted last)",
    ),
    "forget": _one_id(
        "forget",
        "Forget what earlier runs of a task's job used: its next runs reserve the default.",
    ),
    "tasks": tasks_parser,
    "devices": _bare("devices", "The devices, their memory and tasks, and who schedules."),
    "changeDevices": change_devices_parser,
    "settings": settings_parser,
    "new": new_parser,
    "addP": add_plugins_parser,
    "watch": _optional_id(
        "watch",
        "Follow a task's output until it ends (a queued one: why it waits).",
        "the task's id (default: the one this kernel submitted last)",
    ),
    "log": _bare("log", "What the scheduler said since the last `log`."),
    "clear": _bare("clear", "Clear the scheduler's log."),
    "dashboard": _bare("dashboard", "The queue, GPUs, output, analyzers and metric curves, live."),
}


def parse(command: str, argv: Sequence[str]) -> argparse.Namespace:
    """`argv` parsed by the command's parser; HelpShown after `-h`, DLNestError if bad."""
    parsed: argparse.Namespace = PARSERS[command]().parse_args(list(argv))
    return parsed


def absolute_path(path: str) -> str:
    # The server resolves relative paths against its root; the user means the kernel's cwd.
    return str(Path(path).expanduser().resolve())


def plugin_entries(plugins: Sequence[str] | None) -> list[str]:
    """-p's names as sent: shipped names as they are, plugin files as absolute paths."""
    return [absolute_path(p) if is_plugin_file(p) else p for p in plugins or ()]
