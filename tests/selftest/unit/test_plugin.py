"""The pytest plugin's glue (grader/testing/plugin.py): markers read off collected items, the
selection hook applying :mod:`grader.testing.selection`, and the record of a hidden test.

Items and the config are small stand-ins: no child pytest run, no worker."""

from types import SimpleNamespace

import pytest

from grader.outcomes import FAILED, HIDDEN, PASSED, PROPERTY, TIMEOUT, VALUE
from grader.testing import plugin


class FakeItem:
    """A collected test: its node id, markers, fixtures and (``entry``) its ``--submissions`` entry."""

    def __init__(self, name, *marks, fixtures=("impl",), entry=None):
        self.nodeid = f"tests/exercises/test_x.py::{name}"
        self.name = name
        self.markers = {m.mark.name: m.mark for m in marks}
        self.fixturenames = list(fixtures)
        if entry is not None:
            self.callspec = SimpleNamespace(params={"impl": entry})

        def test():
            """the property of the test"""

        self.obj = test

    def get_closest_marker(self, name):
        return self.markers.get(name)

    def __repr__(self):
        return self.name


class FakeConfig:
    """The options of a run, a stash holding the recorder, and the deselect hook."""

    def __init__(self, **options):
        self.options = {"--exercise": [], "--staff": False, "--submission": None, "--submissions": None}
        self.options.update({"--device": []}, **{f"--{k}": v for k, v in options.items()})
        self.stash = pytest.Stash()
        self.stash[plugin._RECORDER] = SimpleNamespace(hidden=[], total=0)
        self.deselected = []
        self.hook = SimpleNamespace(pytest_deselected=lambda items: self.deselected.extend(items))

    def getoption(self, name):
        return self.options[name]


def run(items, **options):
    """``(kept, deselected, hidden, total)`` after the plugin's selection hook."""
    config = FakeConfig(**options)
    items = list(items)
    plugin.pytest_collection_modifyitems(config, items)
    recorder = config.stash[plugin._RECORDER]
    return items, config.deselected, recorder.hidden, recorder.total


sdpa = pytest.mark.exercise("attention.sdpa", weight=2)
gates_property = pytest.mark.exercise("lstm.gates", kind=PROPERTY)
alice = {"id": "alice", "path": "/x/alice", "exercises": ["attention.sdpa"]}


def test_markers_read_off_an_item():
    """Exercise ID and weight (default 1), kind (default value), submission entry (none in a
    single-submission run)."""
    item = FakeItem("a", sdpa)
    assert plugin.exercise_of(item) == ("attention.sdpa", 2)
    assert plugin.kind_of(item) == VALUE
    assert plugin.submission_of(item) is None
    other = FakeItem("b", gates_property, entry=alice)
    assert plugin.exercise_of(other) == ("lstm.gates", 1)
    assert plugin.kind_of(other) == PROPERTY
    assert plugin.submission_of(other) == alice
    assert plugin.exercise_of(FakeItem("c", fixtures=())) is None


def test_a_bad_kind_is_a_usage_error():
    """A kind other than value or property stops the run with a usage error naming the test."""
    with pytest.raises(pytest.UsageError, match=r"test_x\.py::bad: kind must be 'value' or 'property', not 'x'"):
        plugin.kind_of(FakeItem("bad", pytest.mark.exercise("lstm.gates", kind="x")))


def test_the_hook_keeps_the_tests_of_a_full_reference_run():
    """Without options every test runs, hidden and device tests included (the suite tests the
    reference), in collection order."""
    items = [
        FakeItem("a", sdpa),
        FakeItem("b", sdpa, pytest.mark.hidden),
        FakeItem("c", gates_property, pytest.mark.device("cuda")),
        FakeItem("self_test", fixtures=()),
    ]
    kept, deselected, hidden, total = run(items)
    assert (kept, deselected, hidden, total) == (items, [], [], 4)


def test_the_hook_in_a_students_check():
    """A student's check drops the hidden tests, lists them aside, and drops what
    ``--exercise`` and ``--device`` leave out."""
    a, b = FakeItem("a", sdpa), FakeItem("b", sdpa, pytest.mark.hidden)
    c = FakeItem("c", sdpa, pytest.mark.device("cuda"))
    d = FakeItem("d", gates_property, pytest.mark.hidden)
    kept, deselected, hidden, total = run(
        [a, b, c, d], submission="assignments", exercise=["attention"], device=["cpu,meta"]
    )
    assert (kept, deselected, hidden, total) == ([a], [b, c, d], [b], 1)


def test_the_hook_in_a_batch():
    """With ``--submissions`` each test runs only for the entries graded for its exercise."""
    bob = {"id": "bob", "path": "/x/bob", "exercises": ["lstm.gates"]}
    items = [FakeItem("a", sdpa, entry=alice), FakeItem("a", sdpa, entry=bob), FakeItem("b", gates_property, entry=bob)]
    kept, deselected, hidden, total = run(items, submissions="batch.json", staff=True)
    assert (kept, deselected, total) == ([items[0], items[2]], [items[1]], 2)


@pytest.mark.parametrize(
    ("items", "options", "match"),
    [
        ([FakeItem("a")], {}, r"test_x\.py::a uses impl but has no @pytest\.mark\.exercise"),
        ([FakeItem("a", pytest.mark.exercise("attention.nope"))], {}, "unknown exercise 'attention.nope'"),
        ([FakeItem("a", sdpa)], {"device": ["gpu"]}, r"unknown device\(s\) \['gpu'\]"),
    ],
)
def test_the_hook_stops_on_broken_markers_and_options(items, options, match):
    """Broken markers and unknown devices are usage errors, as before the rules moved to
    :mod:`grader.testing.selection`."""
    with pytest.raises(pytest.UsageError, match=match):
        run(items, **options)


def test_a_hidden_tests_record_keeps_only_its_name_and_pass_or_fail():
    """The record of a hidden test drops its message and its exact outcome at the source."""
    item = FakeItem("h", sdpa, pytest.mark.hidden)
    record = plugin._record(item, TIMEOUT, "took 10 s on q=[...]")
    assert record == {
        "nodeid": item.nodeid,
        "exercise": "attention.sdpa",
        "weight": 2,
        "status": FAILED,
        "hidden": True,
        "message": "",
        "property": "the property of the test",
        "submission": "",
        "kind": VALUE,
    }
    for status in (PASSED, HIDDEN, "pending"):
        assert plugin._record(item, status, "x")["status"] == status
    public = plugin._record(FakeItem("p", sdpa, entry=alice), TIMEOUT, "took 10 s")
    assert (public["status"], public["message"], public["submission"]) == (TIMEOUT, "took 10 s", "alice")
