"""Which collected tests run: exercise, submission, device, hidden and oracle, decided from plain data.

The pytest plugin (:mod:`grader.testing.plugin`) reads each collected item's markers and
the command-line options, and asks :func:`decide` whether the item runs.  Nothing here
touches pytest, so every rule is tested in isolation (``tests/selftest/unit/test_selection.py``):

- ``--exercise`` (exercise IDs or module names, repeatable) keeps the tests of those
  exercises and drops every other test, unmarked ones included;
- with ``--submissions`` a test runs for a submission only when that submission is graded
  for the test's exercise;
- a ``@pytest.mark.device(name)`` test runs only when ``name`` is among the selected
  devices (``--device``, default all of cpu, meta and cuda: a missing GPU is a skip with
  its reason, never a silent drop);
- a ``@pytest.mark.hidden`` test runs only in staff grading (``--staff``) or when the suite
  tests the reference itself (no ``--submission`` nor ``--submissions``); otherwise it is
  dropped and listed as "hidden, graded later";
- every exercise test declares where its expected values come from,
  ``@pytest.mark.oracle(kind)`` with a kind of :data:`ORACLES`: ``"library"`` (PyTorch
  functions and modules, closed forms, brute force, or a property), ``"data"`` (input and
  expected files shipped with the tests) or ``"reference"`` (the reference solutions in
  ``solutions/``, which a student release lacks).  A reference test is treated exactly like
  a hidden test: it runs only in staff grading (or when the suite tests the reference), and a
  student's check lists it as "hidden, graded later", so that a student's check gives the
  same public score with or without ``solutions/``.  A staff run that would run a reference
  test where ``solutions/`` is absent is refused, never silently passed.

Broken markers (a test that uses ``impl`` without an exercise, an unknown exercise, a kind
other than value or property, an unknown device, an exercise test without an oracle, an
unknown oracle, the ``reference`` fixture without ``oracle("reference")``) are a
:class:`SelectionError`, which the plugin turns into a usage error.
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from grader.outcomes import PROPERTY, VALUE

#: Every device a device test can name; ``all`` selects them all.
DEVICES = frozenset({"cpu", "meta", "cuda"})

#: The oracle kinds of ``@pytest.mark.oracle(kind)``: where a test's expected values come from.
LIBRARY = "library"
DATA = "data"
REFERENCE = "reference"
ORACLES = (LIBRARY, DATA, REFERENCE)

#: Why a test was dropped (:attr:`Decision.reason`).
NOT_REQUESTED = "not a test of the requested exercises"
NOT_IN_SUBMISSION = "the submission is not graded for this exercise"
DEVICE_NOT_SELECTED = "its device is not selected"
HIDDEN_FOR_STUDENTS = "hidden: runs only in staff grading"
REFERENCE_FOR_STAFF = "its oracle is the reference (solutions/): runs only in staff grading"


class SelectionError(ValueError):
    """A test's markers or a requested device that the grader cannot honour."""


@dataclass(frozen=True)
class Decision:
    """Whether one collected test runs; ``reason`` says why not (empty when it runs).

    ``hidden`` is true for a hidden test dropped from a student's run: it is still listed,
    as "hidden, graded later"."""

    keep: bool
    reason: str = ""
    hidden: bool = False


KEEP = Decision(True)


def is_staff_run(staff: bool, submission: str | None, submissions: str | None) -> bool:
    """Whether hidden and reference tests run: in staff grading (``--staff``), and when the
    suite tests the reference itself (neither ``--submission`` nor ``--submissions`` given)."""
    return bool(staff or not (submission or submissions))


def selected_devices(requested: Iterable[str]) -> set[str]:
    """The devices named by ``--device`` values (``all``, comma lists).  Default: all of them;
    without a GPU the cuda tests are then skipped with the reason stated, never silently."""
    names = {d.strip() for value in requested for d in value.split(",") if d.strip()}
    if not names or "all" in names:
        names = set(DEVICES)
    unknown = names - DEVICES
    if unknown:
        raise SelectionError(f"unknown device(s) {sorted(unknown)}: use cpu, meta, cuda or all")
    return names


def check_kind(nodeid: str, kind: object) -> str:
    """``kind`` when it is ``"value"`` or ``"property"``; else :class:`SelectionError`."""
    if kind not in (VALUE, PROPERTY):
        raise SelectionError(f"{nodeid}: kind must be {VALUE!r} or {PROPERTY!r}, not {kind!r}")
    return str(kind)


def check_oracle(nodeid: str, oracle: object, *, uses_reference: bool = False) -> str:
    """``oracle`` when it is one of :data:`ORACLES`; else :class:`SelectionError`, naming the
    test: ``None`` (no ``@pytest.mark.oracle``), an unknown kind, or a test that takes the
    ``reference`` fixture (``uses_reference``) without ``oracle("reference")``."""
    choices = ", ".join(f"oracle({o!r})" for o in ORACLES)
    if uses_reference and oracle != REFERENCE:
        marked = "not marked with an oracle" if oracle is None else f"marked oracle({oracle!r})"
        raise SelectionError(
            f"{nodeid} uses the reference fixture but is {marked}: "
            f"a test that needs solutions/ must be marked @pytest.mark.oracle({REFERENCE!r})"
        )
    if oracle is None:
        raise SelectionError(
            f"{nodeid} has no @pytest.mark.oracle: declare where its expected values come from ({choices})"
        )
    if oracle not in ORACLES:
        raise SelectionError(f"{nodeid}: unknown oracle {oracle!r}: use {choices}")
    return str(oracle)


def requested(exercise: str, wanted: Collection[str]) -> bool:
    """Whether ``--exercise`` values ``wanted`` (IDs or modules; none means all) name ``exercise``."""
    return not wanted or exercise in wanted or exercise.split(".")[0] in wanted


def in_submission(exercise: str, entry_exercises: Collection[str] | None) -> bool:
    """Whether a submission graded for ``entry_exercises`` takes the tests of ``exercise``
    (``None``: a single-submission run, which takes them all)."""
    return entry_exercises is None or exercise in entry_exercises


def decide(
    nodeid: str,
    exercise: str | None,
    *,
    known: Collection[str],
    kind: object = VALUE,
    uses_impl: bool = False,
    device: str | None = None,
    hidden: bool = False,
    oracle: object = None,
    uses_reference: bool = False,
    entry_exercises: Collection[str] | None = None,
    wanted: Collection[str] = (),
    devices: Collection[str] = DEVICES,
    staff: bool = True,
    reference_available: bool = True,
) -> Decision:
    """Whether the test ``nodeid`` runs, from its markers and the run's options.

    The test's side: ``exercise`` (its exercise marker's ID, ``None`` without one), ``kind``
    (the marker's ``kind``), ``uses_impl`` (it takes the ``impl`` fixture), ``device`` (its
    device marker), ``hidden`` (its hidden marker), ``oracle`` (its oracle marker's kind,
    ``None`` without one), ``uses_reference`` (it takes the ``reference`` fixture),
    ``entry_exercises`` (the exercises its ``--submissions`` entry is graded for; ``None``
    in a single-submission run).  The run's side: ``known`` exercise IDs (the rubric),
    ``wanted`` (``--exercise`` values), ``devices`` (:func:`selected_devices`), ``staff``
    (:func:`is_staff_run`), ``reference_available`` (``solutions/`` holds the test's module).

    Rules are applied in order: exercise requested, submission graded for it, device
    selected, hidden and reference tests only for staff.  Broken markers raise
    :class:`SelectionError`, and so does a reference test that a staff run would run where
    the reference is not available (a student release has no ``solutions/``).
    """
    if exercise is None:
        if uses_impl:
            raise SelectionError(f"{nodeid} uses impl but has no @pytest.mark.exercise")
        if oracle is not None or uses_reference:
            check_oracle(nodeid, oracle, uses_reference=uses_reference)
        return Decision(False, NOT_REQUESTED) if wanted else KEEP
    if exercise not in known:
        raise SelectionError(f"{nodeid}: unknown exercise {exercise!r} (see grader/rubric.py)")
    check_kind(nodeid, kind)
    check_oracle(nodeid, oracle, uses_reference=uses_reference)
    if not requested(exercise, wanted):
        return Decision(False, NOT_REQUESTED)
    if not in_submission(exercise, entry_exercises):
        return Decision(False, NOT_IN_SUBMISSION)
    if device is not None and device not in devices:
        return Decision(False, DEVICE_NOT_SELECTED)
    if hidden and not staff:
        return Decision(False, HIDDEN_FOR_STUDENTS, hidden=True)
    if oracle == REFERENCE:
        if not staff:
            return Decision(False, REFERENCE_FOR_STAFF, hidden=True)
        if not reference_available:
            raise SelectionError(
                f"{nodeid} needs the reference solutions (oracle('reference')) but solutions/ has no "
                f"{exercise.split('.')[0]}.py here (a student release has none): reference tests run only in "
                "staff grading with solutions/; a student's check lists them as 'hidden, graded later'"
            )
    return KEEP
