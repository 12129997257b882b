"""The layer rules of DESIGN.md section 2, checked on every module's imports.

core <- runtime; core <- service <- server; client -> service (the API dispatcher, in process);
dashboard -> client. Inside the service, its rooms (api, kernels, launch) and their arrows.
The server side never imports torch; core imports nothing of Jupyter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dlnest_jupyter"
JUPYTER = {
    "jupyter_server",
    "jupyter_client",
    "IPython",
    "ipywidgets",
    "ipykernel",
    "tornado",
    "traitlets",
}

MAY_IMPORT = {
    "core": {"core"},
    "runtime": {"core", "runtime"},
    "service": {"core", "service"},
    "server": {"core", "service", "server"},
    "cluster": {"core", "service", "cluster"},
    "client": {"core", "service", "client"},
    "dashboard": {"core", "client", "dashboard"},
    "cli": {"core", "runtime", "cluster"},
    "__init__": {"core", "runtime", "server", "client", "dashboard", "_version"},  # lazily
    "_version": set(),
}
# The one wiring point of the optional Ray extra: the factory builds a cluster's executor when
# an address is configured (and imports Ray only then).
MAY_ALSO_IMPORT = {"service/factory.py": {"cluster"}}
MUST_NOT_IMPORT = {
    "core": {"torch", *JUPYTER},
    "service": {"torch"},
    "server": {"torch"},
    "cluster": {"torch", *JUPYTER},
    "client": {"torch"},
    "dashboard": {"torch"},
    "__init__": {"torch", *JUPYTER},
}


def modules() -> list[Path]:
    return [
        p for p in sorted(PACKAGE.rglob("*.py")) if "templates" not in p.relative_to(PACKAGE).parts
    ]


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imports_of(path: Path) -> set[str]:
    """Top-level names imported, with our own layers as `dlnest_jupyter.<layer>`."""
    package_parts = ["dlnest_jupyter", *path.relative_to(PACKAGE).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
                if target == "dlnest_jupyter":  # `from . import x` at the top: x is the layer
                    found.update(f"dlnest_jupyter.{alias.name}" for alias in node.names)
                    continue
                found.add(target)
            elif node.module:
                found.add(node.module)
    return found


def internal_layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "dlnest_jupyter" and len(parts) > 1 else None


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_what_its_layer_may(path: Path) -> None:
    layer = layer_of(path)
    allowed = MAY_IMPORT[layer] | MAY_ALSO_IMPORT.get(str(path.relative_to(PACKAGE)), set())
    forbidden = MUST_NOT_IMPORT.get(layer, set())
    for name in imports_of(path):
        inner = internal_layer(name)
        if inner is not None:
            assert inner in allowed, f"{path.name} ({layer}) imports {name}"
        else:
            assert name.split(".")[0] not in forbidden, f"{path.name} ({layer}) imports {name}"


# The service's rooms (issue 21): where tasks run knows nothing of the API or the kernels; the
# kernels know where tasks run; the API knows the service's verbs and the task-kind table; and
# another layer (the cluster) may use only where tasks run, never the service's inner modules.
# "service" below is the service package's top-level modules (service.py, scheduler.py...).
ROOMS = ("service/api", "service/kernels", "service/launch")
ROOM_MAY_IMPORT = {
    "service/launch": {"service/launch"},
    "service/kernels": {"service/kernels", "service/launch"},
    "service/api": {"service/api", "service"},
    "service": {"service", "service/kernels", "service/launch", "service/api"},
    "cluster": {"service/launch"},
    "server": {"service", "service/api", "service/kernels", "service/launch"},
    "client": {"service/api"},
}


WIRING = "dlnest_jupyter.service.factory"  # what the server, embedded mode and the CLI build from


def room_of_module(name: str) -> str | None:
    """The room of an imported module's dotted name (None outside the service)."""
    parts = name.split(".")
    if parts[:2] != ["dlnest_jupyter", "service"]:
        return None
    inner = "/".join(parts[1:3])
    return inner if inner in ROOMS else "service"


def room_of_path(path: Path) -> str:
    relative = path.relative_to(PACKAGE).as_posix()
    return next((room for room in ROOMS if relative.startswith(room + "/")), layer_of(path))


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if room_of_path(p) in ROOM_MAY_IMPORT],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_the_services_rooms_import_only_along_their_arrows(path: Path) -> None:
    room = room_of_path(path)
    if str(path.relative_to(PACKAGE)) in MAY_ALSO_IMPORT:
        return  # the factory: the one wiring point, which may reach every room
    for name in imports_of(path):
        target = room_of_module(name)
        if target is not None and name != WIRING:
            assert target in ROOM_MAY_IMPORT[room], f"{path.relative_to(PACKAGE)} imports {name}"


def test_the_checker_sees_relative_and_absolute_imports(tmp_path: Path) -> None:
    probe = PACKAGE / "core" / "errors.py"
    assert imports_of(probe) >= {"__future__", "pathlib"}
    assert "dlnest_jupyter.core.errors" in imports_of(PACKAGE / "core" / "config.py")
    assert "dlnest_jupyter.core.package" in imports_of(PACKAGE / "runtime" / "train.py")


def test_importing_the_package_and_core_loads_neither_torch_nor_jupyter() -> None:
    probe = (
        "import sys, importlib, pkgutil, dlnest_jupyter, dlnest_jupyter.core as core, dlnest_jupyter.cli\n"
        "for info in pkgutil.iter_modules(core.__path__): importlib.import_module('dlnest_jupyter.core.' + info.name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted({'torch', *JUPYTER})!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


# Import cycles a module's note explains, as {frozenset of modules: why}. Every import counts:
# at the top, inside a function, or under TYPE_CHECKING (a cycle hidden there is still one).
EXPLAINED_CYCLES: dict[frozenset[str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path, known: set[str]) -> set[str]:
    """Our modules that `path` imports, `from package import module` resolved to the module."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")
                elif target in known:
                    found.add(target)
    return found - {name}


def import_cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = {stack.pop()}
            while module not in group:
                group.add(stack.pop())
            if len(group) > 1:
                cycles.append(frozenset(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_imports_itself_through_others() -> None:
    paths = {module_name(p): p for p in modules()}
    graph = {name: module_imports(path, set(paths)) for name, path in paths.items()}

    unexplained = [sorted(c) for c in import_cycles(graph) if c not in EXPLAINED_CYCLES]

    assert unexplained == []


def test_the_cycle_finder_finds_a_cycle_through_three_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}

    assert import_cycles(graph) == [frozenset({"a", "b", "c"})]
