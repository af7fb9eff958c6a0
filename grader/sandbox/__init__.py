"""The isolated grading engine: student code runs in confined worker processes.

* :mod:`grader.sandbox.protocol` - the wire format (JSON plus raw tensor bytes, capped).
* :mod:`grader.sandbox.worker` - the untrusted side: a zygote that has imported torch
  forks a supervisor per submission module, which forks the confined worker.
* :mod:`grader.sandbox.confine` - limits, namespaces and the privilege drop.
* :mod:`grader.sandbox.client` - the trusted side: the ``sandbox`` adapter.
"""
