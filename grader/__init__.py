"""The DL Basic autograder: stub generation, property-based grading and reports.

Entry point: ``python -m grader --help``.
"""

from pathlib import Path

#: The repository root (the folder holding ``assignments/``, ``solutions/``, ``tests/``).
ROOT = Path(__file__).resolve().parent.parent
