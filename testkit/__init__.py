"""What tests and benchmarks start and drive: a whole running system (`harness.System`), a
throw-away PostgreSQL database (`pgtemp`), and one API driver for the common steps (`api.Api`).

Not part of the installed product: the wheel excludes this package (pyproject.toml). The
tests find it through pytest's `pythonpath = ["."]`, the benchmarks through the checkout root.
"""
