"""What the exercise tests import (the trusted test side).

Every exercise test declares its oracle (``@pytest.mark.oracle("library" | "data" | "reference")``);
reference tests run only in staff grading (see :mod:`~grader.testing.selection`).

* :mod:`~grader.testing.plugin` - the pytest plugin: options, markers, the ``impl`` fixture, records.
* :mod:`~grader.testing.selection` - which collected tests run: exercise, hidden, device, submission.
* :mod:`~grader.testing.checks` - self-explaining assertions (yours vs expected, max |diff|).
* :mod:`~grader.testing.diagnose` - hints: which catalogued mistake a failing output matches.
* :mod:`~grader.testing.replay` - recorded calls run again on private copies; cotangents.
* :mod:`~grader.testing.strategies` - hypothesis strategies and the staff-keyed draws.
* :mod:`~grader.testing.devices` - table-driven device tests (``DeviceCase``, ``device_tests``).
* :mod:`~grader.testing.skips` - a stated reason when a device is unavailable.
* :mod:`~grader.testing.reference` - the reference solutions, loaded in-process (trusted).
"""
