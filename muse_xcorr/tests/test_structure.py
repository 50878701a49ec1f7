"""The package's structure: imports flow one way, and no module reaches into another's privates.

The imports are read from the source (every ``import`` statement, at module
level and inside functions), so a cycle hidden in a function is found too.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: The flow of the package, bottom first: a module may import its own layer and below.
#: FITS / specutils -> spectra -> templates -> the correlation engine (TensorFlow behind
#: backend) -> error estimators -> Redshift -> the Correlator that runs the engine and
#: returns a Redshift -> outputs. The estimators work on a Redshift through its public
#: methods without importing it; the Redshift calls them.
LAYERS = {
    "flags": 0, "grid": 0, "units": 0, "statistics": 0, "version": 0, "confidence": 0,
    "io": 1,
    "spectra": 2,
    "templates": 3, "backend": 3,
    "correlate": 4, "distributed": 4,
    "errors": 5,
    "detection": 6, "result": 6,
    "correlate.correlator": 7, "correlate.__init__": 7,
    "datasets": 8, "visualization": 8, "population": 8,
    "cli": 9, "conftest": 9, "__init__": 10,
}


def _modules():
    out = {}
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if "tests" in relative.parts:
            continue
        name = ".".join(("muse_xcorr",) + relative.with_suffix("").parts)
        out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


MODULES = _modules()


def _imports(name, path):
    """The package modules ``name`` imports (absolute names), anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name):
    parts = name.split(".")[1:]
    if not parts:
        return LAYERS["__init__"]
    if ".".join(parts[:2]) in LAYERS:
        return LAYERS[".".join(parts[:2])]
    if len(parts) == 1 and MODULES[name].name == "__init__.py" and f"{parts[0]}.__init__" in LAYERS:
        return LAYERS[f"{parts[0]}.__init__"]
    return LAYERS[parts[0]]


def test_the_package_has_no_import_cycle():
    def reachable(start):
        seen, stack = set(), [start]
        while stack:
            for target in GRAPH[stack.pop()]:
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return seen

    cycles = sorted({" <-> ".join(sorted([a, b])) for a in GRAPH for b in GRAPH[a]
                     if a in reachable(b)})
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_imports_only_its_layer_and_below(name):
    upward = sorted(t for t in GRAPH[name] if _layer(t) > _layer(name)
                    and not t.startswith(name + "."))
    assert not upward, f"{name} (layer {_layer(name)}) imports {upward}"


def test_only_the_backend_imports_tensorflow():
    importers = sorted(name for name, path in MODULES.items()
                       if any(isinstance(n, (ast.Import, ast.ImportFrom)) and
                              any((a.name if isinstance(n, ast.Import) else n.module or "")
                                  .split(".")[0] == "tensorflow" for a in n.names)
                              for n in ast.walk(ast.parse(path.read_text()))))
    assert importers == ["muse_xcorr.backend._tensorflow"]


def _private_accesses(path):
    """``x._name`` attribute reads/writes where x is not self/cls and _name is not defined here."""
    tree = ast.parse(path.read_text())
    defined = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith("_"):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in ("self", "cls") and node.attr.startswith("_"):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and node.id.startswith("_"):
            defined.add(node.id)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and \
                not node.attr.startswith("__") and node.attr not in defined:
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            out.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    return out


def test_no_module_reaches_into_another_modules_private_attributes():
    found = [access for path in MODULES.values() for access in _private_accesses(path)]
    assert not found, "\n".join(found)
