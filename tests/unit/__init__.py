"""Tests that start nothing: pure functions, parsers, an in-process app on one database."""
