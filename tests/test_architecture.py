"""The house rules a reader of the tree relies on: imports run one way, seams are public, data
crossing a seam is built by keyword. Checked on the source (ast), so they hold in both environments.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("capture", "replay")
# Stages in data-flow order: a module may import its own stage and those listed before it.
STAGES = ("capture", "replay.lock", "replay.results", "replay.shapes", "replay.lineage", "replay.mapping", "replay.backends", "replay.run", "replay.context",
          "replay.studies", "replay.report", "replay.cli")
MANY_FIELDS = 8     # a dataclass with this many fields or more is built by keyword


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            if any(part.startswith(".") for part in path.relative_to(REPO).parts):
                continue        # caches (e.g. the mock device's runtime root), not source
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(path: pathlib.Path) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for every project import, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in PACKAGES:
            names = [a.name for a in node.names]
            # `from replay.mapping import compute` names a submodule, not a value
            subs = [n for n in names if f"{node.module}.{n}" in MODULES]
            out += [(f"{node.module}.{n}", [], node.lineno) for n in subs]
            out.append((node.module, [n for n in names if n not in subs], node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    return {name: {m for m, _, _ in _imports(path) if m in MODULES and m != name}
            for name, path in MODULES.items()}


def _stage(module: str) -> int:
    matches = [i for i, s in enumerate(STAGES) if module == s or module.startswith(s + ".")]
    return max(matches) if matches else -1


def test_no_module_imports_one_that_imports_it_back():
    graph = _graph()
    cycles = []
    state: dict[str, int] = {}      # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]))
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_imports_point_down_the_data_flow():
    upward = []
    for name, path in MODULES.items():
        own = _stage(name)
        for target, _, line in _imports(path):
            if target in MODULES and _stage(target) > own:
                upward.append(f"{path.relative_to(REPO)}:{line}: {name} imports {target}")
    assert not upward, "a lower stage imports a higher one:\n" + "\n".join(upward)


def test_no_private_name_crosses_a_module_boundary():
    crossing = []
    for name, path in MODULES.items():
        for target, names, line in _imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != name:
                crossing.append(f"{path.relative_to(REPO)}:{line}: {', '.join(private)} from {target}")
    assert not crossing, "private names imported across modules:\n" + "\n".join(crossing)


def _dataclasses(tree: ast.Module):
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for deco in node.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if getattr(target, "id", getattr(target, "attr", "")) == "dataclass":
                fields = [s for s in node.body if isinstance(s, ast.AnnAssign)]
                kw_only = isinstance(deco, ast.Call) and any(
                    k.arg == "kw_only" and getattr(k.value, "value", False) is True for k in deco.keywords)
                yield node, len(fields), kw_only


def test_dataclasses_with_many_fields_are_built_by_keyword():
    positional = []
    for name, path in MODULES.items():
        for node, n_fields, kw_only in _dataclasses(ast.parse(path.read_text())):
            if n_fields >= MANY_FIELDS and not kw_only:
                positional.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.name} ({n_fields} fields)")
    assert not positional, "dataclasses to declare with kw_only=True:\n" + "\n".join(positional)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_public_function_has_a_docstring(name):
    tree = ast.parse(MODULES[name].read_text())
    bare = [f"{node.name} (line {node.lineno})" for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")
            and ast.get_docstring(node) is None]
    assert not bare, f"{name}: public without a docstring: " + ", ".join(bare)
