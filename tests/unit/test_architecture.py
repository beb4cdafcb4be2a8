"""The shape issue 17 gave the code, checked so that it stays (docs/architecture.md).

Read from the source with testkit.imports: every import statement counts, lazy and
`TYPE_CHECKING` ones included.
"""

from __future__ import annotations

from testkit.imports import cycles, import_graph, modules

GRAPH = import_graph()


def _under(prefix: str) -> dict[str, set[str]]:
    return {m: deps for m, deps in GRAPH.items() if m == prefix or m.startswith(prefix + ".")}


def test_the_graph_sees_the_whole_project() -> None:
    assert len(modules()) > 200
    assert "controller.services.dispatch" in GRAPH["controller.services.broadcasts"]


def test_no_import_cycle_among_the_projects_modules() -> None:
    assert cycles(GRAPH) == []


def test_no_route_module_reaches_dispatch() -> None:
    """Telling the stations is part of the write (services/dispatch.py stations_changed, queued
    by the session's before_commit hook): a route never queues, publishes or wakes anything."""
    routes = _under("controller.api.routes") | {m: d for m, d in _under("controller.web").items()
                                                 if m.startswith("controller.web.routes")}
    assert len(routes) > 20
    forbidden = {"controller.services.dispatch", "controller.services.desired_state", "controller.mqtt.bus"}
    assert {m: sorted(d & forbidden) for m, d in routes.items() if d & forbidden} == {}
    publishing = [m for m in routes if "publisher" in modules()[m].read_text(encoding="utf-8")]
    assert publishing == []


def test_services_and_use_cases_stand_below_the_routes_and_the_runtime() -> None:
    """Services take narrow collaborators (signer, bus, TTS, settings), never the runtime,
    and know nothing of HTTP routes or panel pages."""
    lower = _under("controller.services") | _under("controller.usecases")
    above = ("controller.runtime", "controller.app", "controller.api", "controller.web")
    reaching = {m: sorted(d for d in deps if d.startswith(above)) for m, deps in lower.items()}
    assert {m: d for m, d in reaching.items() if d} == {}


def test_the_wire_contract_imports_neither_side() -> None:
    sides = ("controller", "device_agents", "firmware_sim", "communecast")
    reaching = {m: sorted(d for d in deps if d.startswith(sides)) for m, deps in _under("protocol").items()}
    assert {m: d for m, d in reaching.items() if d} == {}
