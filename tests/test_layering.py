"""The package's dependency direction: layers, no import cycles, no oversized modules.

Every module of ``src/sentiment_discovery`` is parsed (imports inside functions and under
``TYPE_CHECKING`` included) into an import graph. A module may import only from its own
layer or a lower one, and the graph has no cycle, so an import placed inside a function
can only be there to keep start-up fast (``sentiment-discovery --help`` imports no torch),
never to dodge a cycle; each such import says so with a ``lazy`` comment.

Adding a module: put it in the layer it belongs to in :data:`LAYERS` (a name covers a
package and everything under it unless a submodule is listed itself).
"""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = "sentiment_discovery"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# Lowest first. A name that does not exist (yet) is skipped.
LAYERS: list[list[str]] = [
    # foundation, torch-free: errors, messages, files, text, flags, shared constants
    ["", "foundation"],
    # each command's flags (its config dataclass), what the command line reads to build its parser
    ["configs"],
    # the runtime: precision, device, threads
    ["precision", "runtime"],
    # reading and batching data
    ["data"],
    # the recurrence kernels and the featurize loop (which takes any model, duck-typed)
    ["prepared_weights", "fast_mlstm", "features"],
    # the byte-level language model
    ["model"],
    # what is done with a model: load/save, import, train, measure, fine-tune
    ["checkpoint", "importers", "training", "sharding", "speed", "finetune"],
    # sentiment transfer on the features, and the shipped default model
    ["transfer", "cross_validation", "defaults"],
    # seeing the neuron, and serving it
    ["visualize", "serve"],
    # one recipe per command, and train's run in one process
    ["recipes", "recipes.train_loop"],
    # the command line
    ["cli", "__main__"],
]

# Modules over LONG_MODULE_LINES lines say why in their docstring ("Why this module is long:").
LONG_MODULE_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)  # "" is the package itself


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom | ast.Import, known: dict[str, Path]) -> set[str]:
    """The package modules an import statement loads (as names relative to the package)."""
    targets: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                targets.add(alias.name[len(PACKAGE) + 1 :])
        return targets
    if node.level:
        base = importer.split(".") if importer else []
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        module = ".".join([*base, *(node.module.split(".") if node.module else [])])
    elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
        module = node.module[len(PACKAGE) + 1 :]
    else:
        return targets
    targets.add(module)
    for alias in node.names:  # `from . import transfer` loads the submodule
        candidate = f"{module}.{alias.name}" if module else alias.name
        if candidate in known:
            targets.add(candidate)
    return targets


def _with_parents(name: str, importer: str) -> set[str]:
    """``name`` and the packages above it that importing it runs, save the importer's own."""
    parts = name.split(".") if name else []
    found = {name}
    for depth in range(len(parts)):
        parent = ".".join(parts[:depth])
        if not (importer == parent or importer.startswith(parent + ".") or parent == ""):
            found.add(parent)
    return found


class Import:
    def __init__(self, importer: str, target: str, line: int, in_function: bool):
        self.importer, self.target, self.line, self.in_function = importer, target, line, in_function


def imports() -> list[Import]:
    known = modules()
    found = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        in_function = {id(inner) for function in functions for inner in ast.walk(function)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _resolve(name, path.name == "__init__.py", node, known):
                    for loaded in _with_parents(target, name):
                        if loaded != name and loaded in known:
                            found.append(Import(name, loaded, node.lineno, id(node) in in_function))
    return found


def layer_of(name: str) -> int:
    best, best_length = None, -1
    for index, layer in enumerate(LAYERS):
        for entry in layer:
            if entry in ("", "__main__", "cli") and name != entry:
                continue
            if name == entry or name.startswith(entry + "."):
                if len(entry) > best_length:
                    best, best_length = index, len(entry)
    if best is None:
        raise AssertionError(f"{PACKAGE}.{name} is in no layer: add it to LAYERS in tests/test_layering.py")
    return best


def shown(name: str) -> str:
    return f"{PACKAGE}.{name}" if name else PACKAGE


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_modules_import_only_from_their_layer_or_below():
    upward = [
        f"{shown(i.importer)} (layer {layer_of(i.importer)}) imports {shown(i.target)} (layer {layer_of(i.target)}) "
        f"at line {i.line}"
        for i in imports()
        if layer_of(i.target) > layer_of(i.importer)
    ]
    assert upward == []


def test_the_import_graph_has_no_cycle():
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for i in imports():
        graph[i.importer].add(i.target)
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(shown(n) for n in [*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def _comment_above(lines: list[str], line: int) -> str:
    """The import's own line, and the comment, import and blank lines directly above it (a
    block of imports shares one comment)."""
    text = [lines[line - 1]]
    index = line - 2
    while index >= 0:
        stripped = lines[index].strip()
        if not stripped or stripped.startswith("#") or stripped.startswith(("import ", "from ")):
            text.append(stripped)
            index -= 1
        else:
            break
    return " ".join(text)


def test_imports_inside_functions_say_they_are_lazy():
    """A package import inside a function carries a comment with "lazy" (on it, or above the
    block of imports it is in), or its module states once, in a top-level ``# Lazy imports:``
    comment, why its functions import there."""
    unexplained = []
    sources = {name: path.read_text(encoding="utf-8") for name, path in modules().items()}
    for i in imports():
        if not i.in_function:
            continue
        source = sources[i.importer]
        if any(line.startswith("# Lazy imports:") for line in source.splitlines()):
            continue
        if "lazy" not in _comment_above(source.splitlines(), i.line).lower():
            unexplained.append(f"{shown(i.importer)} line {i.line}: imports {shown(i.target)}")
    assert sorted(set(unexplained)) == []


def test_long_modules_say_why_they_are_long():
    unexplained = []
    for name, path in modules().items():
        source = path.read_text(encoding="utf-8")
        if len(source.splitlines()) <= LONG_MODULE_LINES:
            continue
        if "Why this module is long:" not in (ast.get_docstring(ast.parse(source)) or ""):
            unexplained.append(f"{shown(name)} ({len(source.splitlines())} lines)")
    assert unexplained == []


def dependency_order() -> list[str]:
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for i in imports():
        graph[i.importer].add(i.target)
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        done.add(name)
        for target in sorted(graph[name]):
            visit(target)
        order.append(name)

    for name in sorted(graph):
        visit(name)
    return order


def test_every_module_imports_in_a_fresh_interpreter_in_dependency_order():
    """Lowest first, so that each module finds only what it imports itself already loaded:
    a module that works only when something else happened to be imported before fails here."""
    names = [shown(name) for name in dependency_order() if name != "__main__"]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError as error:\n"
        f"        if error.name and error.name.startswith({PACKAGE!r}):\n"
        "            raise\n"
        "        print(f'{name}: needs {error.name} (not installed)')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
