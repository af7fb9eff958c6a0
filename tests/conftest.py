"""Loads the grader's pytest plugin (options, markers, deterministic hypothesis)."""

pytest_plugins = ["grader.testing.plugin"]
