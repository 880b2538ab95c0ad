"""The package boundaries, checked on the source: every import counts, at module level or inside a function.

An import inside a function is still an import the process may run (a view's lazy import runs on its first
request), so the graph follows them all; only `if TYPE_CHECKING:` blocks are skipped, because they never
run. The rules (docs/architecture.md, "Packages and the import contract"):

- the web process (what Daphne loads: settings, URLconfs, views, consumers, middleware, admin, the Celery
  app it sends through) never reaches the ML libraries nor a worker-only package;
- store imports neither finetune nor chat (nor knowledge: the data flows the other way);
- training and serving do not import each other (both may use workers.models, the shared model loading);
- the ground floor, core, imports none of the apps.

Each failure names the import chain, file and line, so the fix is plain.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("config", "core", "accounts", "store", "finetune", "knowledge", "chat", "stack", "workers")
APPS = ("accounts", "store", "finetune", "knowledge", "chat", "stack", "workers")

# What the base install (no `[worker]` extra) does not have, and what the web must never load. numpy is not
# among them: the web splits datasets with it (MinHash), and the base install declares it.
ML_LIBRARIES = ("torch", "transformers", "peft", "safetensors", "accelerate", "tokenizers", "gguf", "vaderSentiment")
WORKER_ONLY = ("workers",)
TRAINING = ("workers.training",)
SERVING = ("workers.serving",)

# What the web process imports: Daphne loads config.asgi (and through Django every app's AppConfig, models,
# admin, URLconfs, middleware, context processors, backends and template tags); the views and consumers are
# reached from config.urls and config.routing.
WEB_ENTRY_MODULES = ("config.asgi", "config.wsgi", "config.urls", "config.routing", "config.settings", "config.celery")
WEB_MODULE_NAMES = ("apps", "models", "admin", "urls", "api_urls", "routing", "views", "consumers", "middleware",
                    "context_processors", "backends", "forms")


@dataclass(frozen=True)
class Import:
    target: str
    source: str
    line: int
    implicit: bool = False  # the package __init__ a dotted import runs first

    def where(self) -> str:
        return f"{self.source.replace('.', '/')}.py:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files() -> dict[str, Path]:
    files = {}
    for package in PROJECT_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" not in path.parts:
                files[module_name(path)] = path
    return files


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import statement in the tree, at any depth, except under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a import b`: b is a submodule (an edge to a.b) or a name defined in a (an edge to a).
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        found += [Import(target, name, node.lineno) for target in targets]
    return sorted(set(found), key=lambda edge: (edge.line, edge.target))


def build_graph() -> dict[str, list[Import]]:
    files = project_files()
    known = set(files)
    graph = {}
    for name, path in files.items():
        edges = imports_of(name, path, known)
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        for edge in list(edges):
            parts = edge.target.split(".")
            edges += [Import(".".join(parts[:i]), edge.source, edge.line, True) for i in range(1, len(parts))
                      if ".".join(parts[:i]) in known]
        graph[name] = edges
    return graph


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def chain_text(chain: list[Import]) -> str:
    return " -> ".join([chain[0].source] + [f"{edge.target} ({edge.where()})" for edge in chain])


def find_chains(graph: dict[str, list[Import]], starts: list[str], forbidden, allowed=lambda name: True):
    """The shortest import chain from any start to each forbidden module, walking only through `allowed`."""
    seen = {start: [] for start in starts}
    queue = deque(starts)
    chains = {}
    while queue:
        current = queue.popleft()
        for edge in graph.get(current, []):
            chain = [*seen[current], edge]
            if forbidden(edge.target):
                chains.setdefault(edge.target.split(".")[0] if edge.target not in graph else edge.target, chain)
                continue
            if edge.target in graph and edge.target not in seen and allowed(edge.target):
                seen[edge.target] = chain
                queue.append(edge.target)
    return chains


def web_entry_points(graph) -> list[str]:
    entries = [name for name in WEB_ENTRY_MODULES if name in graph]
    for name in graph:
        parts = name.split(".")
        if parts[0] in PROJECT_PACKAGES and not within(name, WORKER_ONLY) and (
            parts[-1] in WEB_MODULE_NAMES or parts[-1].endswith("_views") or "templatetags" in parts
        ):
            entries.append(name)
    return entries


def direct_violations(graph, sources: tuple[str, ...], targets: tuple[str, ...]) -> list[str]:
    return [f"{edge.source} imports {edge.target} ({edge.where()})"
            for name, edges in graph.items() if within(name, sources)
            for edge in edges if not edge.implicit and within(edge.target, targets)]


def test_it_follows_imports_inside_functions():
    source = "def view():\n    from workers.models import loading\n    import torch\n"
    tree_path = REPO / "tests" / "_contract_probe.py"
    tree_path.write_text(source)
    try:
        found = imports_of("store.probe", tree_path, {"workers.models.loading"})
    finally:
        tree_path.unlink()
    assert [edge.target for edge in found] == ["workers.models.loading", "torch"]


def test_it_reaches_the_worker_through_a_lazy_chain():
    graph = {
        "store.views": [Import("finetune.tasks", "store.views", 3)],
        "finetune.tasks": [Import("workers.models.loading", "finetune.tasks", 9)],
        "workers.models.loading": [Import("torch", "workers.models.loading", 40)],
    }
    chains = find_chains(graph, ["store.views"], lambda name: within(name, ML_LIBRARIES))
    assert chain_text(chains["torch"]) == (
        "store.views -> finetune.tasks (store/views.py:3) -> workers.models.loading (finetune/tasks.py:9)"
        " -> torch (workers/models/loading.py:40)")


def test_the_web_process_never_reaches_ml_libraries_or_worker_packages():
    graph = build_graph()
    entries = web_entry_points(graph)
    assert "config.asgi" in entries and "store.views" in entries and "chat.consumers" in entries
    chains = find_chains(graph, entries, lambda name: within(name, ML_LIBRARIES + WORKER_ONLY))
    assert not chains, "the web process reaches worker code:\n" + "\n".join(
        chain_text(chain) for chain in chains.values())


def test_store_imports_neither_finetune_nor_chat_nor_knowledge():
    violations = direct_violations(build_graph(), ("store",), ("finetune", "chat", "knowledge", "stack"))
    assert not violations, "store must not depend on the apps built on it:\n" + "\n".join(violations)


def test_training_and_serving_do_not_import_each_other():
    graph = build_graph()
    violations = direct_violations(graph, TRAINING, SERVING) + direct_violations(graph, SERVING, TRAINING)
    assert not violations, "training and serving share only workers.models:\n" + "\n".join(violations)


def test_the_ground_floor_imports_no_app():
    violations = direct_violations(build_graph(), ("core",), APPS)
    assert not violations, "core is the ground floor; it must not import the apps:\n" + "\n".join(violations)


def test_every_worker_only_module_is_outside_the_web_entry_points():
    graph = build_graph()
    assert any(within(name, SERVING) for name in graph) and any(within(name, TRAINING) for name in graph)
    assert not [name for name in web_entry_points(graph) if within(name, WORKER_ONLY)]
