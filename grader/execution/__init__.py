"""Everything that runs beside student code.

This folder is copied whole into every sandbox worker (with ``grader/__init__.py`` and
:mod:`grader.outcomes`), so its modules import only the standard library, torch, numpy,
:mod:`grader.outcomes` and each other; ``tests/selftest/unit/test_layout.py`` fails, naming
the file and the import, when one reaches further.

* :mod:`~grader.execution.calls` - ``Call``/``CallResult``, loading a submitted module,
  running one call with gradients and checks, sanitizing what comes back.
* :mod:`~grader.execution.guards` - trip-wires for library calls that would do the exercise.
* :mod:`~grader.execution.static_check` - the forbidden-call check, read before any code runs.
* :mod:`~grader.execution.protocol` - the wire format (JSON plus raw tensor bytes, capped).
* :mod:`~grader.execution.worker` - the zygote that has imported torch, the supervisor it
  forks per submission module, and the confined worker's request loop.
* :mod:`~grader.execution.confine` - the allowlisted filesystem, namespaces, limits and the
  privilege drop.
* :mod:`~grader.execution.cgroup` - the per-worker memory cgroup.

The trusted side that talks to the worker is :mod:`grader.adapters.sandboxed`.
"""
