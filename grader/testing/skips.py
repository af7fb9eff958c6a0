"""The only skips the grader honours: ones it decides itself from trusted facts.

A test is skipped only through :func:`unavailable` (for example: no GPU on this machine).
Any other skip, whatever raised it, is recorded as a failure, so nothing a submission
says or does can move a test out of the denominator.
"""

from typing import NoReturn

from _pytest.outcomes import Skipped  # pytest.skip.Exception, under its importable name


class Unavailable(Skipped):
    """A skip decided by the grader: what the test needs is not on this machine."""


def unavailable(reason: str) -> NoReturn:
    """Skip the current test because ``reason`` (a trusted fact) holds."""
    raise Unavailable(reason)
