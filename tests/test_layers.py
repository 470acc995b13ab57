"""The layers of DEVELOPERS.md's map, kept in order: no module imports a layer above its own.

Every ``import`` under src/optibridge counts, also those inside functions and under
TYPE_CHECKING: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A part may import its own layer and the layers below; "apart" layers' parts
# may not import each other (the two clients know nothing of one another).
LAYERS: tuple[tuple[str, frozenset[str], bool], ...] = (
    ("foundations", frozenset({"__init__", "config", "domain", "ratelimit", "retry", "logs",
                               "observe", "refusals", "safejson", "signing", "serving",
                               "events_config", "failures", "offload", "allocator"}), False),
    ("clients", frozenset({"optimove", "platform"}), True),
    ("store", frozenset({"store"}), False),
    ("pipeline", frozenset({"pipeline"}), False),
    ("service", frozenset({"service"}), False),
    ("sandboxes", frozenset({"sandbox"}), False),  # only the demo and the CLI run them
    ("demo", frozenset({"demo"}), False),
    ("cli", frozenset({"cli", "__main__"}), False),
)
# Written from the seeds and the reference notes alone: they import nothing of the product,
# or a client's misreading of a contract would be repeated by its emulator and pass unseen.
SELF_CONTAINED = frozenset({"sandbox"})

# Known violations, each to be removed when it is fixed: (importing module, imported module).
ALLOWED: dict[tuple[str, str], str] = {}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    package = SRC / "optibridge"
    return (package / f"{name}.py").exists() or (package / name).is_dir()


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "optibridge":  # from optibridge import observe, __version__
                yield from (f"optibridge.{alias.name}" if _is_module(alias.name)
                            else "optibridge" for alias in node.names)
            else:
                yield node.module
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import; the project imports absolutely")


def _part(module: str) -> str:
    """The part of the map a module belongs to: ``optibridge.X...`` -> X."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(part: str) -> int:
    for rank, (_, parts, _) in enumerate(LAYERS):
        if part in parts:
            return rank
    raise AssertionError(f"optibridge.{part} is in no layer: add it to LAYERS")


def _refusal(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported``, or None if it may."""
    mine, theirs = _part(importer), _part(imported)
    if mine == theirs:
        return None
    if mine in SELF_CONTAINED:
        return f"optibridge.{mine} imports nothing of the product"
    rank, other = _layer(mine), _layer(theirs)
    name, _, apart = LAYERS[rank]
    if other > rank:
        return f"{name} may not import the {LAYERS[other][0]} layer above it"
    if other == rank and apart:
        return f"the {name} layer's parts do not import each other"
    return None


def test_every_module_imports_only_below_its_layer() -> None:
    found = []
    for path in sorted((SRC / "optibridge").rglob("*.py")):
        importer = _module(path)
        for imported in _imports(path):
            if not imported.startswith("optibridge"):
                continue
            reason = _refusal(importer, imported)
            if reason and (importer, imported) not in ALLOWED:
                found.append(f"{importer} imports {imported}: {reason}")
    assert found == []


def test_the_rule_refuses_what_it_should() -> None:
    """The checker itself, on made-up imports (a rule that cannot fail checks nothing)."""
    assert _refusal("optibridge.store.campaigns", "optibridge.pipeline.worker")
    assert _refusal("optibridge.platform.client", "optibridge.optimove.errors")
    assert _refusal("optibridge.config", "optibridge.store.schema")
    assert _refusal("optibridge.pipeline.worker", "optibridge.sandbox.platform")
    assert _refusal("optibridge.sandbox.platform.core", "optibridge.platform.api")
    assert _refusal("optibridge.sandbox.optimove.sandbox", "optibridge.config")
    assert _refusal("optibridge.cli.serve", "optibridge.service.app") is None
    assert _refusal("optibridge.sandbox.optimove.files", "optibridge.sandbox.gcs") is None
    assert _refusal("optibridge.logs", "optibridge.config") is None
