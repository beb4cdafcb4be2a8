"""The station agent's layering (issue 17): what the code review would otherwise have to recheck.

- device_agents imports nothing from firmware_sim: simulated hardware is handed in
  (firmware_sim/bench.py → device_agents.runner.start_station(bench=...));
- no import cycle inside device_agents, TYPE_CHECKING imports included;
- stream playback reaches into no other object's private members (it goes on air through OnAir).
"""

from __future__ import annotations

import ast

from testkit.imports import ROOT, cycles, import_graph

PACKAGE = ROOT / "device_agents"
GRAPH = import_graph(packages=("device_agents", "firmware_sim"))


def test_the_agent_package_never_imports_the_simulator() -> None:
    agent = {m: deps for m, deps in GRAPH.items() if m.startswith("device_agents")}
    assert len(agent) > 30
    offenders = {m: sorted(d for d in deps if d.startswith("firmware_sim")) for m, deps in agent.items()}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_no_import_cycle_in_the_agent_package() -> None:
    assert cycles(GRAPH) == []
    assert "device_agents.speaker.role" not in GRAPH["device_agents.speaker.stream"]


def test_stream_playback_touches_no_private_member_of_another_object() -> None:
    tree = ast.parse((PACKAGE / "speaker" / "stream.py").read_text(encoding="utf-8"))
    reached = [
        f"{ast.unparse(node.value)}.{node.attr} (line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]
    assert reached == []
