"""No module of harness/decide imports a sibling that (directly or through others, lazily inside a
function or not) imports it back: each can be imported alone, in any order."""

import ast
from pathlib import Path

import harness.decide

DECIDE = Path(harness.decide.__file__).parent


def sibling_imports(path: Path) -> set[str]:
    """The harness.decide modules one file imports anywhere in it ('__init__' for the package itself)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "harness.decide":
                found |= {a.name for a in node.names if (DECIDE / f"{a.name}.py").is_file()} or {"__init__"}
            elif node.module.startswith("harness.decide."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path.name}: relative import: use harness.decide.<module>")
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("harness.decide.")}
    return found


def graph() -> dict[str, set[str]]:
    return {p.stem: sibling_imports(p) for p in DECIDE.glob("*.py")}


def cycle_from(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    """A path start -> ... -> start, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in edges.get(node, ()):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_the_graph_sees_the_imports_it_checks():
    edges = graph()
    assert {"matrix", "sweep", "compare", "capacity", "common", "search"} <= set(edges)
    assert "capacity" in edges["matrix"] and "search" in edges["capacity"] and "common" in edges["sweep"]
    assert edges["__init__"] >= {"compare", "matrix", "sweep"}


def test_no_module_imports_itself_back():
    edges = graph()
    cycles = [" -> ".join(c) for m in sorted(edges) if m != "__init__" if (c := cycle_from(m, edges))]
    assert not cycles, f"import circles in harness/decide: {cycles}"


def test_common_is_a_leaf():
    assert graph()["common"] == set()


def test_cycle_finder_finds_a_planted_circle():
    assert cycle_from("matrix", {"matrix": {"capacity"}, "capacity": {"sweep"}, "sweep": {"matrix"}}) == \
        ["matrix", "capacity", "sweep", "matrix"]
    assert cycle_from("matrix", {"matrix": {"common"}, "common": set()}) is None
