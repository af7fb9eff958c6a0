"""From submission folders to scores (trusted orchestration; never runs student code itself).

* :mod:`~grader.grading.runner` - ``grade()``/``grade_many()``: the child pytest run and its records.
* :mod:`~grader.grading.scoring` - ``TestRecord``, ``ExerciseResult``, ``Report``, the scoring
  rule and the Gradescope ``results.json``.
* :mod:`~grader.grading.report` - the terminal table and feedback.
* :mod:`~grader.grading.batch` - the resumable batch: discover, stage, grade, gradebook.
* :mod:`~grader.grading.cluster` - the batch on Dask: a local cluster or ``--scheduler ADDRESS``.
* :mod:`~grader.grading.warm` - the warm grader of ``check --watch``: one server, a fork per grading.
* :mod:`~grader.grading.watch` - ``check --watch``: re-grade a module when its file changes.
* :mod:`~grader.grading.staging` - the safe copy of a submission's files out of a folder or a zip.
* :mod:`~grader.grading.gpu` - GPU count and which processes hold GPU memory.
"""
