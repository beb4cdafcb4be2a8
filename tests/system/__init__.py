"""Tests that start a whole controller and stations: end to end, browser, week, replicas."""
