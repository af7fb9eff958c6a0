"""Staff authoring tools: never imported on the grading path.

* :mod:`~grader.authoring.stubgen` - ``solutions/`` to the ``assignments/`` stubs.
* :mod:`~grader.authoring.mutants` - grade every catalog entry and check the tests catch it.
"""
