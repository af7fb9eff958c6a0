"""Outcome names, test kinds, and the exceptions that carry an outcome.

Shared by every room of :mod:`grader` (the worker side included, so this module imports
nothing of the grader).  Every problem with a submission is raised as a
:class:`SubmissionProblem`; its ``status`` is the outcome shown to the student for that test.
"""

from collections.abc import Iterable

PASSED = "passed"
FAILED = "failed"
ERROR = "error"
TIMEOUT = "timeout"
CRASHED = "crashed"
OUT_OF_MEMORY = "out of memory"
NOT_IMPLEMENTED = "not implemented"
MISSING = "missing"
HIDDEN = "hidden, graded later"

#: The two kinds of test (README, "How a score is computed"): a value test compares values
#: with an independent oracle; a property test checks a property a constant could satisfy.
VALUE = "value"
PROPERTY = "property"

#: Outcomes from the most to the least telling, used to summarise an exercise.
SEVERITY = (CRASHED, OUT_OF_MEMORY, TIMEOUT, ERROR, MISSING, NOT_IMPLEMENTED, FAILED, HIDDEN, PASSED)


class SubmissionProblem(Exception):
    """Something about the submission costs it the test; ``status`` names the outcome.
    ``measures``: the isolation of the worker it happened in, when it ended before the module
    could be used (its import failed)."""

    status = ERROR
    measures: list[str] | None = None


class NotImplementedYet(SubmissionProblem):
    """The student's function still raises ``NotImplementedError`` (the stub's TODO)."""

    status = NOT_IMPLEMENTED


class StudentCodeError(SubmissionProblem):
    """The student's code raised an exception.

    ``exc_type`` is the exception's class name (a string, so that it can cross a
    process boundary), ``where`` the innermost line of the submission that raised.
    """

    def __init__(self, call: str, exc_type: str, message: str, where: str = "") -> None:
        self.call, self.exc_type, self.message, self.where = call, exc_type, message, where
        text = f"{call} raised {exc_type}: {message}"
        if where:
            text += f"\n  at {where}"
        super().__init__(text)


class SubmissionImportError(SubmissionProblem):
    """The submission file could not be imported (syntax error, exception at import)."""


class MissingName(SubmissionProblem):
    """The submission file does not define a function or class the contract asks for."""


class ForbiddenCall(SubmissionProblem):
    """The student's code called the library function that does the whole exercise."""

    status = FAILED


class BadOutput(SubmissionProblem):
    """The student's code returned something that is not the contract's type or shape."""

    status = FAILED


class WorkerTimeout(SubmissionProblem):
    """A call ran past its wall-clock or CPU-time limit."""

    status = TIMEOUT


class WorkerCrashed(SubmissionProblem):
    """The process running the student's code died (a signal, ``os._exit``)."""

    status = CRASHED


class WorkerOutOfMemory(SubmissionProblem):
    """The student's code ran past the memory limit."""

    status = OUT_OF_MEMORY


class PropertyFailure(AssertionError):
    """A property of the exercise does not hold for the student's code."""

    status = FAILED

    def text(self, named: list[str] | None = None) -> str:
        """The message with the diagnosed hint lines ``named`` (those it does not hold yet)."""
        message = str(self)
        return "\n".join([message, *[n for n in named or () if n not in message]])


def worst(statuses: Iterable[str]) -> str:
    """The most telling outcome among ``statuses`` (see :data:`SEVERITY`)."""
    present = set(statuses)
    for status in SEVERITY:
        if status in present:
            return status
    return PASSED
