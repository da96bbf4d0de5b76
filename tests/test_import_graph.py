"""The package is a one-way house: no import cycle between its modules, and no module
imports one from a higher floor, lazy imports inside functions included.

The import graph is read from the source with the standard library's ``ast`` (nothing is
imported), so an import hidden in a function or under ``TYPE_CHECKING`` counts like any
other. A package's ``__init__`` counts as the package; a module's import of its own parent
packages is ignored (Python runs them first anyway).
"""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "minicnn")

#: The floors, bottom to top: a module may import its own floor and the floors below.
#: ``minicnn`` itself (its ``__init__``) is the roof over all of them. serialization (the
#: bounded .npz reader and atomic writes) and init (weight initialisers) import nothing of
#: minicnn and serve the layers, so they sit under them.
FLOORS = ("parameter", "grad_mode", "parallel", "serialization", "init", "functional",
          "layers", "models", "losses", "optim", "gradient_check", "export", "data",
          "training", "viz", "cli")


def module_name(path, root=ROOT):
    rel = os.path.relpath(path, os.path.dirname(root))[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def package_modules(root=ROOT):
    """Module name -> file, for every .py file under ``root``."""
    return {module_name(os.path.join(d, f), root): os.path.join(d, f)
            for d, _, files in os.walk(root) for f in files if f.endswith(".py")}


def imports_of(name, path, known):
    """``{imported module: line}`` for every import in the file, at any depth of the tree
    (functions, classes, ``if`` blocks); a name imported from a module counts as the module."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.setdefault(target, node.lineno)
    return found


def import_graph(root=ROOT):
    """Module -> {module it imports: line of the import}."""
    modules = package_modules(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def floor(name):
    """The floor of a module: the index of its part (``minicnn.training.loop`` -> training)
    in :data:`FLOORS`; the package root is above every floor."""
    parts = name.split(".")
    return len(FLOORS) if len(parts) == 1 else FLOORS.index(parts[1])


def upward_imports(graph):
    """``"a -> b (line n)"`` for every import of a module on a higher floor."""
    return [f"{a} -> {b} (line {line})" for a, targets in sorted(graph.items())
            for b, line in sorted(targets.items()) if floor(b) > floor(a)]


def parts_graph(graph):
    """The import graph between the package's direct parts (minicnn.layers, minicnn.viz, ...)."""
    part = lambda n: ".".join(n.split(".")[:2])  # noqa: E731
    out = {}
    for a, targets in graph.items():
        out.setdefault(part(a), {})
        for b in targets:
            if part(a) != part(b) and part(b) != "minicnn":
                out[part(a)][part(b)] = 0
                out.setdefault(part(b), {})
    return out


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_part_of_the_package_has_a_floor(graph):
    unknown = sorted({n.split(".")[1] for n in graph if "." in n} - set(FLOORS))
    assert not unknown, f"add these parts of minicnn to FLOORS: {unknown}"


def test_no_import_cycle_between_modules(graph):
    found = cycles({a: sorted(t) for a, t in graph.items()})
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_import_cycle_between_parts(graph):
    found = cycles(parts_graph(graph))
    assert not found, "import cycles between parts: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_imports_a_higher_floor(graph):
    found = upward_imports(graph)
    assert not found, "imports from a lower floor to a higher one:\n" + "\n".join(found)


# -- the checker itself, on a small made-up package -----------------------------------

def write_package(tmp_path, files):
    root = tmp_path / "minicnn"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


def test_the_checker_sees_lazy_relative_and_type_checking_imports(tmp_path):
    root = write_package(tmp_path, {
        "__init__.py": "from . import layers\n",
        "layers/__init__.py": "from .base import Layer\n",
        "layers/base.py": "def load():\n    from ..training.checkpoint import read\n",
        "training/__init__.py": "",
        "training/checkpoint.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                  "    from minicnn.layers.base import Layer\n",
    })
    graph = import_graph(root)
    assert graph["minicnn.layers.base"] == {"minicnn.training.checkpoint": 2}
    assert graph["minicnn.training.checkpoint"] == {"minicnn.layers.base": 3}
    assert graph["minicnn.layers"] == {"minicnn.layers.base": 1}
    assert cycles({a: sorted(t) for a, t in graph.items()}) == [
        ["minicnn.layers.base", "minicnn.training.checkpoint"]]
    assert upward_imports(graph) == ["minicnn.layers.base -> minicnn.training.checkpoint (line 2)"]


def test_the_checker_passes_a_one_way_package(tmp_path):
    root = write_package(tmp_path, {
        "__init__.py": "from .training import fit\nfrom .layers import Layer\n",
        "layers/__init__.py": "from .base import Layer\n",
        "layers/base.py": "import numpy\n",
        "training/__init__.py": "from .loop import fit\n",
        "training/loop.py": "from .. import layers\nfrom ..layers.base import Layer\n",
    })
    graph = import_graph(root)
    assert not cycles({a: sorted(t) for a, t in graph.items()})
    assert not cycles(parts_graph(graph))
    assert upward_imports(graph) == []


def test_only_the_command_line_parses_arguments():
    """argparse (and sys.argv) belong to minicnn.cli: training, viz and data take values."""
    users = []
    for name, path in sorted(package_modules().items()):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            imported = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                        [node.module] if isinstance(node, ast.ImportFrom) else [])
            argv = isinstance(node, ast.Attribute) and node.attr == "argv"
            if ("argparse" in imported or argv) and not name.startswith("minicnn.cli"):
                users.append(f"{name} (line {node.lineno})")
    assert not users, f"argument parsing outside minicnn.cli: {users}"
