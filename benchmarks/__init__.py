"""The project's benchmarks (`communecast bench ...`): whole systems measured on this machine.

Not part of the installed product: the wheel excludes this package (pyproject.toml), so a
station's `pip install 'communecast[agent]'` carries none of it. It is importable in a source
checkout; communecast/commands/bench.py finds it there.
"""
