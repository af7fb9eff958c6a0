"""The class report (``python -m grader report OUT_DIR``): one static HTML page about a graded
batch, for staff.

- :mod:`~grader.classreport.data` reads ``OUT_DIR`` (each ``<id>/results.json``, ``notes.txt``,
  ``grades.csv``) into plain dataclasses; what cannot be read becomes a listed problem.
- :mod:`~grader.classreport.stats` summarizes a batch: score distributions, the frequent
  mistakes and failing properties per exercise, the limits hit, the grading time.
- :mod:`~grader.classreport.plots` draws the distributions with matplotlib as inline SVG.
- :mod:`~grader.classreport.page` renders the page from ``templates/`` with Jinja2 (autoescaped).
- :mod:`~grader.classreport.commands` is the command line: its arguments and its errors.
"""
