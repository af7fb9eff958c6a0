"""The examples an undecided hint is refined on (grader/testing/diagnose.py): where one
exercise's tests ran in two forked processes, the examples both kept, merged, are the ones a
single process would have kept."""

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from grader.testing import diagnose

EXERCISE = "attention.sdpa"


def _run(tests: list[tuple[int, int]]) -> diagnose.Recording:
    """A recording that kept the examples of ``tests`` ([(its place in the run, how many
    examples)]), in that order, each example a distinct step list."""
    recording = diagnose.Recording(SimpleNamespace(module="attention"))
    recording._exercise = EXERCISE
    for place, count in tests:
        recording._epoch = place
        for n in range(count):
            recording.steps = [f"test {place} example {n}"]  # type: ignore[list-item]
            recording.archive()
    recording.steps = []
    return recording


@given(
    counts=st.lists(st.integers(0, 30), min_size=1, max_size=8),
    where=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_merged_examples_are_those_one_process_keeps(counts, where):
    """Tests dealt between two processes, each keeping its first ``HISTORY`` examples: the
    merge is the single process's list, the same step lists in the same order."""
    tests = list(enumerate(counts))
    one = _run(tests)
    halves = [_run([t for t, side in zip(tests, where, strict=False) if side is first]) for first in (True, False)]
    merged = diagnose.merge(half.evidence({EXERCISE}).get(EXERCISE, []) for half in halves)
    expected = one.examples.get(EXERCISE, [])
    assert merged == expected
    assert len(merged) == min(sum(counts), diagnose.HISTORY)
    kept = {id(steps) for half in halves for steps in half.examples.get(EXERCISE, [])}
    assert all(id(steps) in kept for steps in merged)  # the processes' own lists: `is` still finds a failure's


def test_evidence_is_only_of_the_exercises_asked_and_includes_the_current_example():
    recording = _run([(0, 2)])
    recording.steps = ["the example still running"]  # type: ignore[list-item]
    got = recording.evidence({EXERCISE})
    assert [steps for _, steps in got[EXERCISE]][-1] == ["the example still running"]
    assert [place for place, _ in got[EXERCISE]] == [0, 0, 0]
    assert recording.evidence({"attention.heads"}) == {}
