"""Agents that run on station hardware (Raspberry Pi) and speak to the controller."""

import sys

# httpx's package imports its command-line client (httpx._main: rich, pygments, click) whenever
# those happen to be installed, as in a development or controller venv (schemathesis, uvicorn pull
# them in): ~3.5 MB of RSS an agent keeps for its whole life and never uses. A station installs
# only communecast[agent], without them, where that import fails and httpx goes on without its CLI;
# this makes every agent process behave so (issue 21: the agent's 60 MB budget on a Pi).
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]
