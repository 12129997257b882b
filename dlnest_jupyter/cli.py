"""`dlnest`: run, continue and analyse in the foreground, and start projects; DLNest's flags.

    dlnest run -c ROOT [-f FREQ] [-d DESC] [-ns] [-sd] [-CPU] [-devices ID ...] [-DDP] [-m MB] [--dry-run]
    dlnest continue -r PKG [-c ID] [-f FREQ] [--epochs N] [-CPU] [-devices ID ...] [-DDP]
    dlnest analyze -r PKG -s SCRIPT.py [-c ID] [-CPU] [-devices ID ...]
    dlnest new -d DIR [-t clean|digits] [-MNIST] [-p PLUGIN ...]
    dlnest addP -d DIR -p PLUGIN ... [-F]
    dlnest ray-node [--address HEAD:PORT] [--node NAME] [--dry-run] [-- RAY_START_FLAG ...]

Exit codes: 0 done, 1 the run aborted, 2 bad input (nothing was created), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.continuation import plan_continuation
from .core.devices import FAKE_GPUS_ENV
from .core.dry_run import checked_config, dry_run
from .core.errors import DLNestError
from .core.package import SavePackage
from .core.package_creation import PackageOptions, create_package, discard_new_package
from .core.project_plugins import FULL_HELP, PLUGINS_HELP, add_plugins, plugins_added_lines
from .core.templates import DEFAULT_TEMPLATE, TEMPLATE_NAMES, new_project

if TYPE_CHECKING:  # importing runtime imports torch: only the commands that train load it
    from .runtime.session import Session
    from .runtime.train_request import TrainRequest

EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    options = parser.parse_args(argv)
    try:
        return int(options.handler(options))
    except DLNestError as exc:
        print(f"dlnest: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def _run(options: argparse.Namespace) -> int:
    if options.dry_run:
        print("\n".join(dry_run(options.c, options.f)))
        return 0
    loaded = checked_config(options.c, options.f)
    _warn(loaded.warnings)
    package = create_package(
        loaded,
        PackageOptions(description=options.d or "", no_save=options.ns, use_description=options.sd),
    )
    try:
        request, session = _prepare(package, options, kind="train", checkpoint_id=None)
    except BaseException:  # bad input, or Ctrl+C before training started: the package never ran
        discard_new_package(package)
        raise
    return _train(package, request, session)


def _continue(options: argparse.Namespace) -> int:
    package = SavePackage.open(options.r)
    resolved = package.resolve_checkpoint(options.c)
    continuation = plan_continuation(package, resolved, options.f, options.epochs)
    _warn(continuation.warnings)
    request, session = _prepare(
        package,
        options,
        kind="continue",
        checkpoint_id=resolved,
        overrides=continuation.overrides,
        freq_path=options.f and str(options.f.expanduser().resolve()),
    )
    return _train(package, request, session)


def _prepare(
    package: SavePackage,
    options: argparse.Namespace,
    kind: str,
    checkpoint_id: int | None,
    overrides: dict[str, Any] | None = None,
    freq_path: str | None = None,
) -> tuple[TrainRequest, Session]:
    from .runtime.devices import default_device_ids  # torch loads only for commands that train
    from .runtime.train import prepare
    from .runtime.train_request import TrainRequest

    devices = tuple(options.devices) if options.devices else tuple(default_device_ids(options.CPU))
    request = TrainRequest(
        kind=kind,
        device_ids=devices,
        checkpoint_id=checkpoint_id,
        ddp=options.DDP,
        memory_mb=options.m,
        echo=True,
        overrides=overrides or None,
        freq_path=freq_path,
        pretend_gpus=FAKE_GPUS_ENV in os.environ,  # the cards the CLI was told of are pretend
    )
    return request, prepare(package, request)


def _train(package: SavePackage, request: TrainRequest, session: Session) -> int:
    from .runtime.train import train

    print(f"dlnest: {request.kind} in save package {package.path}", flush=True)
    exit_code = train(session, request)
    head = package.state().head
    outcome = "finished" if exit_code == 0 else f"stopped with exit code {exit_code}"
    print(f"dlnest: {outcome}; latest checkpoint {head}; save package {package.path}", flush=True)
    return exit_code


def _analyze(options: argparse.Namespace) -> int:
    from .runtime.analysis import load_experience, load_for_analysis
    from .runtime.devices import default_device_ids

    experience = load_experience(options.s)
    devices = options.devices or default_device_ids(options.CPU)
    context = load_for_analysis(options.r, options.c, devices)
    print(
        f"dlnest: analysing {context.package.path} at checkpoint {context.checkpoint_id}",
        flush=True,
    )
    os.chdir(context.package.path)  # as in training: relative paths in scripts mean the package
    experience(context)
    return 0


def _new(options: argparse.Namespace) -> int:
    template = "digits" if options.MNIST else options.t
    folder, added = new_project(options.d, template, options.p or ())
    print(f"dlnest: new {template} project in {folder}")
    if added is not None:
        print("\n".join(f"dlnest: {line}" for line in plugins_added_lines(added.to_json())))
    print(f"dlnest: train it with: dlnest run -c {folder / 'root_config.json'}")
    return 0


def _add_plugins(options: argparse.Namespace) -> int:
    added = add_plugins(options.d, options.p, options.F)
    print("\n".join(f"dlnest: {line}" for line in plugins_added_lines(added.to_json())))
    return 0


def _warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"dlnest: warning: {warning}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlnest", description="Train, continue and analyse DLNest-style projects."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="train a project in the foreground")
    run.add_argument(
        "-c", required=True, metavar="ROOT", type=Path, help="root config (root_config.json)"
    )
    run.add_argument(
        "-f", metavar="FREQ", type=Path, help="frequently-changed config, applied last"
    )
    run.add_argument(
        "-d", metavar="DESC", help="description, recorded in args.json as _description"
    )
    run.add_argument(
        "-ns",
        action="store_true",
        help="save into the NOSAVE scratch package (replaced every time)",
    )
    run.add_argument("-sd", action="store_true", help="name the package after the description")
    run.add_argument(
        "--dry-run", action="store_true", help="print the merged config and which file set each key"
    )
    _training_flags(run)
    run.set_defaults(handler=_run)

    cont = commands.add_parser("continue", help="continue training a save package")
    cont.add_argument("-r", required=True, metavar="PKG", type=Path, help="save package folder")
    cont.add_argument(
        "-c",
        type=int,
        default=-1,
        metavar="ID",
        help="checkpoint id (default: the latest of the current branch)",
    )
    cont.add_argument(
        "-f",
        metavar="FREQ",
        type=Path,
        help="a config laid over the checkpoint's, for a branch of its own (args.json stays)",
    )
    cont.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="train until epoch N in total (sets the config's `epochs`, which it must have; "
        "N past the checkpoint's epoch)",
    )
    _training_flags(cont)
    cont.set_defaults(handler=_continue)

    analyze = commands.add_parser("analyze", help="load a save package and run one analysis script")
    analyze.add_argument("-r", required=True, metavar="PKG", type=Path, help="save package folder")
    analyze.add_argument(
        "-s",
        required=True,
        metavar="SCRIPT",
        type=Path,
        help="a .py file defining experience(self)",
    )
    analyze.add_argument(
        "-c", type=int, default=-1, metavar="ID", help="checkpoint id (default: the latest)"
    )
    _placement_flags(analyze)
    analyze.set_defaults(handler=_analyze)

    new = commands.add_parser("new", help="start a project from a template")
    new.add_argument("-d", required=True, metavar="DIR", help="folder to create")
    new.add_argument("-t", choices=TEMPLATE_NAMES, default=DEFAULT_TEMPLATE, help="template")
    new.add_argument("-MNIST", action="store_true", help="DLNest's flag: the digits template")
    new.add_argument("-p", nargs="+", action="extend", metavar="PLUGIN", help=PLUGINS_HELP)
    new.set_defaults(handler=_new)

    add_p = commands.add_parser("addP", help="add plugins and their configs to a project")
    add_p.add_argument("-d", required=True, metavar="DIR", help="the project's folder")
    add_p.add_argument(
        "-p", nargs="+", action="extend", required=True, metavar="PLUGIN", help=PLUGINS_HELP
    )
    add_p.add_argument("-F", action="store_true", help=FULL_HELP)
    add_p.set_defaults(handler=_add_plugins)

    node = commands.add_parser(
        "ray-node",
        help="join this machine to a Ray cluster with its GPUs (README, Several machines)",
        description="Run `ray start` with this machine's cards declared for dlnest-jupyter: "
        "one resource per card holding its memory in MiB, and no Ray GPUs.",
    )
    node.add_argument("--address", help="the head's HOST:PORT; without it, start a head here")
    node.add_argument("--port", type=int, default=6379, help="a head's port (default 6379)")
    node.add_argument("--node", help="this machine's node name (default: its host name)")
    node.add_argument("--dry-run", action="store_true", help="print the ray start line only")
    node.add_argument(
        "ray_args", nargs="*", metavar="RAY_ARG", help="more `ray start` flags, after --"
    )
    node.set_defaults(handler=_ray_node)
    return parser


def _ray_node(options: argparse.Namespace) -> int:
    from .cluster import node_start

    return node_start.run(
        options.address, options.node, options.port, options.dry_run, options.ray_args
    )


def _placement_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-CPU", action="store_true", help="run on the CPU")
    parser.add_argument(
        "-devices",
        type=int,
        nargs="+",
        metavar="ID",
        help="device ids (-1 is the CPU; default GPU 0 or the CPU)",
    )


def _training_flags(parser: argparse.ArgumentParser) -> None:
    _placement_flags(parser)
    parser.add_argument(
        "-m",
        type=int,
        metavar="MB",
        help="estimated GPU memory in MiB (recorded; used by the scheduler)",
    )
    parser.add_argument(
        "-DDP",
        action="store_true",
        help="DistributedDataParallel: one process per device (-devices -1 -1: two on the CPU)",
    )


if __name__ == "__main__":
    sys.exit(main())
