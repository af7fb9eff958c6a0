"""Peer review of student solutions: plan, gallery, web app, scores.

* :mod:`~grader.review.form` - the rubric (``review/rubric.toml``): items, levels, ``RubricError``.
* :mod:`~grader.review.consensus` - ``python -m grader review score``: median consensus per item,
  reviewer agreement and helpfulness (tit-for-tat ratings dropped), flags for staff, the CSV files.
* :mod:`~grader.review.normalize` - one exercise cut out of a module with the helpers it calls,
  canonical code (names, comments, layout and synonyms such as ``@``/``torch.matmul`` erased), the
  stack key, and the approach label (einsum, matmul, mul-sum, loop).
* :mod:`~grader.review.gallery` - ``python -m grader review gallery``: OverCode-style cards, one per
  stack of the same normalized code and behaviour (status, failed properties, matched mistake),
  read from a graded batch.
* :mod:`~grader.review.plan` - ``python -m grader review plan``: who reviews whom (exactly k each
  way, no self, no reciprocal pair, conflicts apart, passing reviewers for failing authors,
  contrasting approaches, staff on top), keyed aliases, ``assignments.csv``.
* :mod:`~grader.review.anonymize` - what a reviewer sees of a solution: the author's identity
  (harvested from the id, folder name and code; a roster adds names) replaced token by token,
  every line where it was.
* :mod:`~grader.review.rounds` - a round's folder: ``plan.json``, ``solutions.json`` (anonymized
  code and the grader's evidence), ``review.db`` and ``links.csv`` on first serve, ``scores/``.
* :mod:`~grader.review.store` - the round's SQLite database (every saved version kept with its
  line comments, opaque ids, moderation, reassignments, deadlines; schema migrations with a backup).
* :mod:`~grader.review.web` - ``python -m grader review serve``: reviewer, author and staff pages
  under waitress, CSRF-protected.
* :mod:`~grader.review.commands` - the ``review`` sub-commands.
"""
