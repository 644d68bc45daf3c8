"""The peer engine's layering (tracker/peer/__init__.py): every piece of per-connection state has
one owning module, and nothing else writes it.

The check parses the package with `ast`. It collects the fields of each state class (dataclass
annotations and `self.<name> = ...` in its methods) and then flags, in every module that does not
own the class, any assignment, augmented assignment, deletion, item assignment or mutating method
call (`.clear()`, `.append()`, ...) on an attribute of that name. Names are matched whatever the
object is called (`conn.down.wanted`, `down.wanted` after `down = conn.down`), so two state classes
with different owners must not share a field name; the test enforces that too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tracker" / "peer"

# state class -> the modules (file names in tracker/peer) allowed to write its fields
OWNERS: dict[str, frozenset[str]] = {
    "PeerConnection": frozenset({"connection.py"}),
    "DownloadState": frozenset({"downloading.py"}),
    "UploadState": frozenset({"uploading.py"}),
    "CreditAccount": frozenset({"credit.py", "billing.py"}),
    "PurchaseAccount": frozenset({"credit.py", "billing.py"}),
    "SeederTally": frozenset({"credit.py", "billing.py"}),
}
# modules the connection may import at run time: it frames, validates and (MSE) decrypts, and
# knows nothing of downloading, uploading, billing or the kind of stream under it
CONNECTION_IMPORTS = frozenset(
    {"tracker.peer.wire", "tracker.peer.errors", "tracker.peer.extension", "tracker.peer.mse"}
)
MUTATORS = frozenset(
    {"append", "appendleft", "add", "clear", "discard", "extend", "insert", "pop", "popleft", "popitem"}
    | {"remove", "setdefault", "update", "sort", "reverse", "rotate"}
)


def class_fields(tree: ast.Module, name: str) -> set[str]:
    """The attributes a class declares: annotated class-level names and `self.x` it assigns."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == name:
            fields = {
                stmt.target.id
                for stmt in node.body
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
            }
            for inner in ast.walk(node):
                targets: list[ast.expr] = []
                if isinstance(inner, ast.Assign):
                    targets = inner.targets
                elif isinstance(inner, (ast.AnnAssign, ast.AugAssign)):
                    targets = [inner.target]
                for target in targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ):
                        fields.add(target.attr)
            return fields
    raise AssertionError(f"state class {name} not found")


def state_fields(sources: dict[str, ast.Module]) -> dict[str, frozenset[str]]:
    """Field name -> the modules that may write it."""
    owners: dict[str, frozenset[str]] = {}
    for cls, modules in OWNERS.items():
        tree = next((tree for tree in sources.values() if _defines(tree, cls)), None)
        assert tree is not None, f"state class {cls} not found in the package"
        for name in class_fields(tree, cls):
            if name in owners and owners[name] != modules:
                raise AssertionError(f"field {name!r} of {cls} is also a field of a class with other owners")
            owners[name] = modules
    return owners


def _defines(tree: ast.Module, cls: str) -> bool:
    return any(isinstance(node, ast.ClassDef) and node.name == cls for node in ast.walk(tree))


def _written_attribute(target: ast.expr) -> ast.Attribute | None:
    """The attribute a write goes to: `a.b = `, `a.b[i] = ` and `a.b.c = ` (which writes c)."""
    while isinstance(target, ast.Subscript):
        target = target.value
    return target if isinstance(target, ast.Attribute) else None


def writes(tree: ast.Module) -> list[tuple[int, str, str]]:
    """(line, field, class the write is in) for every write to an attribute in the module."""
    found: list[tuple[int, str, str]] = []

    def visit(node: ast.AST, cls: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.ClassDef) else cls
            targets: list[ast.expr] = []
            if isinstance(child, ast.Assign):
                targets = child.targets
            elif isinstance(child, (ast.AnnAssign, ast.AugAssign)):
                targets = [child.target]
            elif isinstance(child, ast.Delete):
                targets = child.targets
            elif (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr in MUTATORS
            ):
                targets = [child.func.value]
            for target in targets:
                elements = target.elts if isinstance(target, ast.Tuple) else [target]
                for element in elements:
                    attribute = _written_attribute(element)
                    if attribute is None:
                        continue
                    on_self = isinstance(attribute.value, ast.Name) and attribute.value.id == "self"
                    # `self.x` in a class that is not a state class is that class's own field
                    if on_self and cls not in OWNERS:
                        continue
                    found.append((attribute.lineno, attribute.attr, cls))
            visit(child, inner)

    visit(tree, "")
    return found


def violations(sources: dict[str, ast.Module]) -> list[str]:
    """Every write to a state field outside the modules that own it."""
    owners = state_fields(sources)
    out = []
    for module, tree in sorted(sources.items()):
        for line, name, _ in writes(tree):
            allowed = owners.get(name)
            if allowed is not None and module not in allowed:
                out.append(f"tracker/peer/{module}:{line} writes {name!r}, owned by {sorted(allowed)}")
    return out


def package_sources() -> dict[str, ast.Module]:
    """Every module of tracker/peer, parsed (file name -> tree)."""
    return {path.name: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.glob("*.py"))}


def test_every_per_connection_field_is_written_only_by_its_owning_module() -> None:
    assert violations(package_sources()) == []


def test_the_connection_imports_nothing_above_the_wire_at_run_time() -> None:
    tree = package_sources()["connection.py"]
    runtime: set[str] = set()
    for node in tree.body:  # module level; `if TYPE_CHECKING:` blocks hold type-only imports
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tracker"):
            runtime |= {f"{node.module}.{alias.name}" for alias in node.names}
            runtime.add(node.module)
        elif isinstance(node, ast.Import):
            runtime |= {alias.name for alias in node.names if alias.name.startswith("tracker")}
    modules = {name for name in runtime if name.count(".") == 2}
    assert modules <= CONNECTION_IMPORTS | {"tracker.peer"}, modules - CONNECTION_IMPORTS


@pytest.mark.parametrize(
    ("module", "code", "field"),
    [
        ("torrent.py", "def f(conn):\n    conn.down.wanted += 1\n", "wanted"),
        ("torrent.py", "def f(conn):\n    conn.up.am_choking = True\n", "am_choking"),
        ("downloading.py", "def f(conn):\n    conn.up.queue.clear()\n", "queue"),
        ("superseed.py", "def f(conn, i):\n    conn.flags[i] = 1\n", "flags"),
        ("uploading.py", "def f(account):\n    account.served += 5\n", "served"),
        ("torrent.py", "def f(conn):\n    down = conn.down\n    del down.outstanding[3]\n", "outstanding"),
        ("session.py", "def f(conn):\n    conn.address, x = ('h', 1), 2\n", "address"),
    ],
)
def test_the_check_catches_a_write_from_outside_the_owner(module: str, code: str, field: str) -> None:
    sources = package_sources()
    sources[module] = ast.parse((PACKAGE / module).read_text() + "\n\n" + code)
    found = violations(sources)
    assert len(found) == 1
    assert f"writes {field!r}" in found[0]


def test_the_check_allows_a_class_its_own_fields_of_the_same_name() -> None:
    sources = package_sources()
    code = "class P:\n    def __init__(self):\n        self.flags = []\n        self.flags.append(1)\n"
    sources["picker.py"] = ast.parse(code)
    assert violations(sources) == []
