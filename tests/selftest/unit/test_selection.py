"""Which collected tests run (grader/testing/selection.py): the rules of the README's "Hidden
tests" and "Devices" sections, and the oracle tiers (a reference test is a hidden test for
students), decided from plain data."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.outcomes import PROPERTY, VALUE
from grader.testing.selection import (
    DATA,
    DEVICE_NOT_SELECTED,
    DEVICES,
    HIDDEN_FOR_STUDENTS,
    KEEP,
    LIBRARY,
    NOT_IN_SUBMISSION,
    NOT_REQUESTED,
    ORACLES,
    REFERENCE,
    REFERENCE_FOR_STAFF,
    Decision,
    SelectionError,
    check_kind,
    check_oracle,
    decide,
    in_submission,
    is_staff_run,
    requested,
    selected_devices,
)

KNOWN = ("attention.sdpa", "attention.mha", "lstm.gates", "elbo.kl")
NODE = "tests/exercises/test_x.py::test_y"


# ---- the run's side ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], {"cpu", "meta", "cuda"}),
        (["all"], {"cpu", "meta", "cuda"}),
        (["cpu"], {"cpu"}),
        (["cpu,meta"], {"cpu", "meta"}),
        ([" cuda ", "cpu,", ",meta"], {"cpu", "meta", "cuda"}),
        (["meta", "all"], {"cpu", "meta", "cuda"}),
        ([","], {"cpu", "meta", "cuda"}),
    ],
)
def test_selected_devices(values, expected):
    """``--device`` values (repeatable, comma lists, spaces ignored, ``all``) name the devices;
    none at all means every device (a missing GPU is then a stated skip, not a silent drop)."""
    assert selected_devices(values) == expected
    assert DEVICES == {"cpu", "meta", "cuda"}


@pytest.mark.parametrize("values", [["tpu"], ["cpu,gpu"], ["cuda:0"], ["CPU"]])
def test_an_unknown_device_is_refused(values):
    """A device name the grader does not know is an error naming it and the choices."""
    with pytest.raises(SelectionError, match=r"^unknown device\(s\) \['.+'\]: use cpu, meta, cuda or all$"):
        selected_devices(values)


@pytest.mark.parametrize(
    ("staff", "submission", "submissions", "expected"),
    [
        (False, None, None, True),  # the suite tests the reference itself
        (False, "assignments", None, False),  # a student's check
        (False, None, "batch.json", False),  # several submissions, not staff
        (True, "assignments", None, True),  # check --staff
        (True, None, "batch.json", True),  # grader batch
        (False, "", None, True),  # an empty --submission is none
    ],
)
def test_hidden_tests_run_for_staff_and_for_the_reference(staff, submission, submissions, expected):
    """Hidden tests run in staff grading and when the suite tests the reference; never in a
    student's check."""
    assert is_staff_run(staff, submission, submissions) is expected


@pytest.mark.parametrize(
    ("exercise", "wanted", "expected"),
    [
        ("attention.sdpa", set(), True),
        ("attention.sdpa", {"attention.sdpa"}, True),
        ("attention.sdpa", {"attention"}, True),
        ("attention.sdpa", {"lstm", "attention.mha"}, False),
        ("attention.sdpa", {"attention.sd"}, False),
        ("attention.sdpa", {"att"}, False),
        ("attention.sdpa", {"sdpa"}, False),
    ],
)
def test_requested(exercise, wanted, expected):
    """``--exercise`` names whole exercise IDs or whole modules, never a prefix or a suffix."""
    assert requested(exercise, wanted) is expected


def test_in_submission():
    """A single-submission run takes every exercise; an entry of ``--submissions`` its own only."""
    assert in_submission("lstm.gates", None)
    assert in_submission("lstm.gates", ["attention.sdpa", "lstm.gates"])
    assert not in_submission("lstm.gates", ["attention.sdpa"])
    assert not in_submission("lstm.gates", [])


def test_check_kind():
    """A test is a value test or a property test; anything else names the test and the choices."""
    assert check_kind(NODE, VALUE) == VALUE
    assert check_kind(NODE, PROPERTY) == PROPERTY
    for bad in ("Value", "values", None, 1):
        with pytest.raises(SelectionError) as info:
            check_kind(NODE, bad)
        assert str(info.value) == f"{NODE}: kind must be 'value' or 'property', not {bad!r}"


def test_check_oracle():
    """An exercise test declares its oracle: library, data or reference.  No marker, another
    kind, or the reference fixture without oracle("reference") names the test and the choices."""
    assert ORACLES == ("library", "data", "reference")
    for oracle in ORACLES:
        assert check_oracle(NODE, oracle) == oracle
    assert check_oracle(NODE, REFERENCE, uses_reference=True) == REFERENCE
    choices = "oracle('library'), oracle('data'), oracle('reference')"
    with pytest.raises(SelectionError) as info:
        check_oracle(NODE, None)
    assert (
        str(info.value) == f"{NODE} has no @pytest.mark.oracle: declare where its expected values come from ({choices})"
    )
    for bad in ("Library", "snapshot", "", 1, ("library", "data")):
        with pytest.raises(SelectionError) as info:
            check_oracle(NODE, bad)
        assert str(info.value) == f"{NODE}: unknown oracle {bad!r}: use {choices}"
    for oracle in (LIBRARY, DATA):
        with pytest.raises(SelectionError) as info:
            check_oracle(NODE, oracle, uses_reference=True)
        assert str(info.value) == (
            f"{NODE} uses the reference fixture but is marked oracle({oracle!r}): a test that needs solutions/ "
            "must be marked @pytest.mark.oracle('reference')"
        )


# ---- one test's decision -------------------------------------------------------------------


def test_an_unmarked_test_runs_unless_exercises_are_requested():
    """A test without an exercise marker (a self-test) runs in a full run and is dropped when
    ``--exercise`` picks exercises."""
    assert decide(NODE, None, known=KNOWN) == KEEP
    assert decide(NODE, None, known=KNOWN, wanted={"lstm"}) == Decision(False, NOT_REQUESTED)
    assert decide(NODE, None, known=KNOWN, oracle=REFERENCE, uses_reference=True, staff=False) == KEEP


def test_broken_markers_are_errors():
    """A test that uses ``impl`` without an exercise marker, an exercise the rubric lacks, or
    a kind that is neither value nor property stops the run, naming the test; even when the
    test would be dropped anyway."""
    with pytest.raises(SelectionError, match=f"^{NODE} uses impl but has no @pytest.mark.exercise$"):
        decide(NODE, None, known=KNOWN, uses_impl=True)
    with pytest.raises(SelectionError, match=r"^.*: unknown exercise 'attention\.nope' \(see grader/rubric\.py\)$"):
        decide(NODE, "attention.nope", known=KNOWN, wanted={"lstm"})
    with pytest.raises(SelectionError, match="kind must be"):
        decide(NODE, "lstm.gates", known=KNOWN, kind="values", oracle=LIBRARY, wanted={"attention"})
    with pytest.raises(SelectionError, match=f"^{NODE} has no @pytest.mark.oracle: "):
        decide(NODE, "lstm.gates", known=KNOWN, wanted={"attention"})
    with pytest.raises(SelectionError, match=r"^.*: unknown oracle 'snapshot': use "):
        decide(NODE, "lstm.gates", known=KNOWN, oracle="snapshot", staff=False)
    with pytest.raises(SelectionError, match=f"^{NODE} uses the reference fixture but is marked oracle\\('library'\\)"):
        decide(NODE, "lstm.gates", known=KNOWN, oracle=LIBRARY, uses_reference=True, wanted={"elbo"})
    with pytest.raises(SelectionError, match=f"^{NODE} uses the reference fixture but is marked oracle\\('data'\\)"):
        decide(NODE, None, known=KNOWN, oracle=DATA, uses_reference=True)
    with pytest.raises(SelectionError, match=r"^.* uses the reference fixture but is not marked with an oracle: "):
        decide(NODE, None, known=KNOWN, uses_reference=True)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, KEEP),
        ({"wanted": {"lstm"}}, KEEP),
        ({"wanted": {"lstm.gates", "elbo"}}, KEEP),
        ({"wanted": {"attention"}}, Decision(False, NOT_REQUESTED)),
        ({"entry_exercises": ["lstm.gates"]}, KEEP),
        ({"entry_exercises": ["elbo.kl"]}, Decision(False, NOT_IN_SUBMISSION)),
        ({"device": "cuda"}, KEEP),
        ({"device": "cuda", "devices": {"cpu", "meta"}}, Decision(False, DEVICE_NOT_SELECTED)),
        ({"hidden": True}, KEEP),
        ({"hidden": True, "staff": False}, Decision(False, HIDDEN_FOR_STUDENTS, hidden=True)),
        # the first rule that drops a test gives the reason: a hidden test dropped for
        # another reason is not listed as "hidden, graded later"
        ({"hidden": True, "staff": False, "wanted": {"elbo"}}, Decision(False, NOT_REQUESTED)),
        ({"hidden": True, "staff": False, "entry_exercises": []}, Decision(False, NOT_IN_SUBMISSION)),
        ({"hidden": True, "staff": False, "device": "meta", "devices": {"cpu"}}, Decision(False, DEVICE_NOT_SELECTED)),
        ({"wanted": {"elbo"}, "entry_exercises": []}, Decision(False, NOT_REQUESTED)),
        # a reference test is a hidden test for students; library and data tests are public
        ({"oracle": REFERENCE}, KEEP),
        ({"oracle": REFERENCE, "staff": False}, Decision(False, REFERENCE_FOR_STAFF, hidden=True)),
        (
            {"oracle": REFERENCE, "staff": False, "uses_reference": True},
            Decision(False, REFERENCE_FOR_STAFF, hidden=True),
        ),
        (
            {"oracle": REFERENCE, "staff": False, "reference_available": False},
            Decision(False, REFERENCE_FOR_STAFF, hidden=True),
        ),
        ({"oracle": REFERENCE, "hidden": True, "staff": False}, Decision(False, HIDDEN_FOR_STUDENTS, hidden=True)),
        ({"oracle": REFERENCE, "staff": False, "wanted": {"elbo"}}, Decision(False, NOT_REQUESTED)),
        ({"oracle": REFERENCE, "reference_available": False, "wanted": {"elbo"}}, Decision(False, NOT_REQUESTED)),
        (
            {"oracle": REFERENCE, "reference_available": False, "entry_exercises": []},
            Decision(False, NOT_IN_SUBMISSION),
        ),
        ({"oracle": DATA, "staff": False}, KEEP),
        ({"oracle": LIBRARY, "staff": False, "reference_available": False}, KEEP),
    ],
)
def test_decide_examples(kwargs, expected):
    """Worked examples for a test of ``lstm.gates`` (a library test unless said otherwise):
    each rule on its own, then the order in which they apply."""
    assert decide(NODE, "lstm.gates", known=KNOWN, **{"oracle": LIBRARY, **kwargs}) == expected


def test_a_staff_run_refuses_reference_tests_without_the_reference():
    """Where solutions/ lacks the module (a student release), a staff run that would run a
    reference test stops with an error that says why, naming the test; it never passes
    silently.  A student's run there lists the test as hidden."""
    with pytest.raises(SelectionError) as info:
        decide(NODE, "lstm.gates", known=KNOWN, oracle=REFERENCE, reference_available=False)
    assert str(info.value) == (
        f"{NODE} needs the reference solutions (oracle('reference')) but solutions/ has no lstm.py here (a "
        "student release has none): reference tests run only in staff grading with solutions/; a student's "
        "check lists them as 'hidden, graded later'"
    )
    student = decide(NODE, "lstm.gates", known=KNOWN, oracle=REFERENCE, reference_available=False, staff=False)
    assert student == Decision(False, REFERENCE_FOR_STAFF, hidden=True)


@settings(max_examples=60)
@given(
    exercise=st.sampled_from(KNOWN),
    kind=st.sampled_from([VALUE, PROPERTY]),
    device=st.none() | st.sampled_from(sorted(DEVICES)),
    hidden=st.booleans(),
    oracle=st.sampled_from(ORACLES),
    entry=st.none() | st.lists(st.sampled_from(KNOWN), unique=True),
    wanted=st.sets(st.sampled_from([*KNOWN, "attention", "lstm", "elbo", "param_count"])),
    devices=st.sets(st.sampled_from(sorted(DEVICES)), min_size=1),
    staff=st.booleans(),
)
def test_a_test_runs_exactly_when_every_rule_lets_it(
    exercise, kind, device, hidden, oracle, entry, wanted, devices, staff
):
    """A marked test runs when its exercise is requested (or nothing is), its submission is
    graded for it, its device is selected and it is public (not hidden, not a reference
    test) or the run is staff grading; it is listed as hidden exactly when only the hidden or
    reference rule drops it; a dropped test has a reason."""
    got = decide(
        NODE,
        exercise,
        known=KNOWN,
        kind=kind,
        device=device,
        hidden=hidden,
        oracle=oracle,
        entry_exercises=entry,
        wanted=wanted,
        devices=devices,
        staff=staff,
    )
    module = exercise.split(".")[0]
    selected = (
        (not wanted or exercise in wanted or module in wanted)
        and (entry is None or exercise in entry)
        and (device is None or device in devices)
    )
    secret = hidden or oracle == REFERENCE
    assert got.keep == (selected and (staff or not secret))
    assert got.hidden == (selected and secret and not staff)
    assert bool(got.reason) != got.keep
