"""Loads the grader's pytest plugin: its options, markers and deterministic examples.

``python -m pytest`` runs the exercise tests on ``assignments/`` (or ``--submission DIR``),
the same tests ``python -m grader check`` scores.
"""

pytest_plugins = ["grader.testing.plugin"]
