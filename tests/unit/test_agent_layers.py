"""The station agent's layering (issue 17): what the code review would otherwise have to recheck.

- device_agents imports nothing from firmware_sim: simulated hardware is handed in
  (firmware_sim/bench.py → device_agents.runner.start_station(bench=...));
- no import cycle inside device_agents, TYPE_CHECKING imports included;
- stream playback reaches into no other object's private members (it goes on air through OnAir).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "device_agents"


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {alias.name for alias in node.names}
        graph[name] = deps
    return graph


def test_the_agent_package_never_imports_the_simulator() -> None:
    graph = _imports()
    assert len(graph) > 30
    offenders = {m: sorted(d for d in deps if d.split(".")[0] == "firmware_sim") for m, deps in graph.items()}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_no_import_cycle_in_the_agent_package() -> None:
    imports = _imports()
    graph = {m: {d for d in deps if d in imports} for m, deps in imports.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError(" -> ".join([*path[path.index(module):], module]))
        if module in done:
            return
        for dep in graph[module]:
            visit(dep, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])
    assert "device_agents.speaker.role" not in graph["device_agents.speaker.stream"]


def test_stream_playback_touches_no_private_member_of_another_object() -> None:
    tree = ast.parse((PACKAGE / "speaker" / "stream.py").read_text(encoding="utf-8"))
    reached = [
        f"{ast.unparse(node.value)}.{node.attr} (line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]
    assert reached == []
