"""The pytest plugin's glue (grader/testing/plugin.py): markers read off collected items, the
selection hook applying :mod:`grader.testing.selection`, the record of a hidden test, the
oracle markers (a reference test is hidden from students, the ``reference`` fixture is
for reference tests only) and the oracle marks of the device tests.

Items and the config are small stand-ins: no child pytest run, no worker."""

import json
import sys
from types import SimpleNamespace

import pytest
import torch

from grader.outcomes import FAILED, HIDDEN, PASSED, PROPERTY, TIMEOUT, VALUE
from grader.testing import devices, plugin
from grader.testing import reference as solutions


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
library = pytest.mark.oracle("library")
by_reference = pytest.mark.oracle("reference")
alice = {"id": "alice", "path": "/x/alice", "exercises": ["attention.sdpa"]}


def test_markers_read_off_an_item():
    """Exercise ID and weight (default 1), kind (default value), submission entry (none in a
    single-submission run)."""
    item = FakeItem("a", sdpa, library)
    assert plugin.exercise_of(item) == ("attention.sdpa", 2)
    assert plugin.kind_of(item) == VALUE
    assert plugin.submission_of(item) is None
    other = FakeItem("b", gates_property, library, entry=alice)
    assert plugin.exercise_of(other) == ("lstm.gates", 1)
    assert plugin.kind_of(other) == PROPERTY
    assert plugin.submission_of(other) == alice
    assert plugin.exercise_of(FakeItem("c", fixtures=())) is None
    assert plugin.oracle_of(item) == "library"
    assert plugin.oracle_of(FakeItem("c", fixtures=())) is None
    assert plugin.oracle_of(FakeItem("d", pytest.mark.oracle())) == ()
    assert plugin.oracle_of(FakeItem("d", pytest.mark.oracle("data", "x"))) == ("data", "x")
    assert not plugin.is_hidden(item)
    assert plugin.is_hidden(FakeItem("e", sdpa, by_reference))
    assert plugin.is_hidden(FakeItem("f", sdpa, library, pytest.mark.hidden))


def test_a_bad_kind_is_a_usage_error():
    """A kind other than value or property stops the run with a usage error naming the test."""
    with pytest.raises(pytest.UsageError, match=r"test_x\.py::bad: kind must be 'value' or 'property', not 'x'"):
        plugin.kind_of(FakeItem("bad", pytest.mark.exercise("lstm.gates", kind="x"), library))


def test_the_hook_keeps_the_tests_of_a_full_reference_run():
    """Without options every test runs, hidden and device tests included (the suite tests the
    reference), in collection order."""
    items = [
        FakeItem("a", sdpa, library),
        FakeItem("b", sdpa, library, pytest.mark.hidden),
        FakeItem("c", gates_property, library, pytest.mark.device("cuda")),
        FakeItem("self_test", fixtures=()),
    ]
    kept, deselected, hidden, total = run(items)
    assert (kept, deselected, hidden, total) == (items, [], [], 4)


def test_the_hook_in_a_students_check():
    """A student's check drops the hidden tests, lists them aside, and drops what
    ``--exercise`` and ``--device`` leave out."""
    a, b = FakeItem("a", sdpa, library), FakeItem("b", sdpa, library, pytest.mark.hidden)
    c = FakeItem("c", sdpa, library, pytest.mark.device("cuda"))
    d = FakeItem("d", gates_property, library, pytest.mark.hidden)
    kept, deselected, hidden, total = run(
        [a, b, c, d], submission="assignments", exercise=["attention"], device=["cpu,meta"]
    )
    assert (kept, deselected, hidden, total) == ([a], [b, c, d], [b], 1)


def test_the_hook_in_a_batch():
    """With ``--submissions`` each test runs only for the entries graded for its exercise."""
    bob = {"id": "bob", "path": "/x/bob", "exercises": ["lstm.gates"]}
    items = [
        FakeItem("a", sdpa, library, entry=alice),
        FakeItem("a", sdpa, library, entry=bob),
        FakeItem("b", gates_property, library, entry=bob),
    ]
    kept, deselected, hidden, total = run(items, submissions="batch.json", staff=True)
    assert (kept, deselected, total) == ([items[0], items[2]], [items[1]], 2)


@pytest.mark.parametrize(
    ("items", "options", "match"),
    [
        ([FakeItem("a")], {}, r"test_x\.py::a uses impl but has no @pytest\.mark\.exercise"),
        ([FakeItem("a", pytest.mark.exercise("attention.nope"), library)], {}, "unknown exercise 'attention.nope'"),
        ([FakeItem("a", sdpa, library)], {"device": ["gpu"]}, r"unknown device\(s\) \['gpu'\]"),
        ([FakeItem("a", sdpa)], {}, r"test_x\.py::a has no @pytest\.mark\.oracle: declare where its expected values"),
        ([FakeItem("a", sdpa, pytest.mark.oracle("snapshot"))], {}, r"test_x\.py::a: unknown oracle 'snapshot'"),
        ([FakeItem("a", sdpa, pytest.mark.oracle())], {}, r"test_x\.py::a: unknown oracle \(\)"),
        (
            [FakeItem("a", sdpa, library, fixtures=("impl", "reference"))],
            {"submission": "assignments"},
            r"test_x\.py::a uses the reference fixture but is marked oracle\('library'\)",
        ),
        (
            [FakeItem("a", fixtures=("reference",))],
            {},
            r"test_x\.py::a uses the reference fixture but is not marked with an oracle",
        ),
    ],
)
def test_the_hook_stops_on_broken_markers_and_options(items, options, match):
    """Broken markers and unknown devices are usage errors, as before the rules moved to
    :mod:`grader.testing.selection`."""
    with pytest.raises(pytest.UsageError, match=match):
        run(items, **options)


def test_a_hidden_tests_record_keeps_only_its_name_and_pass_or_fail():
    """The record of a hidden test drops its message and its exact outcome at the source."""
    item = FakeItem("h", sdpa, library, pytest.mark.hidden)
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
    public = plugin._record(FakeItem("p", sdpa, library, entry=alice), TIMEOUT, "took 10 s")
    assert (public["status"], public["message"], public["submission"]) == (TIMEOUT, "took 10 s", "alice")


def test_a_reference_test_is_hidden_from_a_students_check(monkeypatch, tmp_path):
    """A student's check lists a reference test as "hidden, graded later" and never runs it,
    with or without solutions/; staff grading and a run on the reference itself run it."""
    a, r = FakeItem("a", sdpa, library), FakeItem("r", sdpa, by_reference, fixtures=("impl", "reference"))
    assert run([a, r], submission="assignments") == ([a], [r], [r], 1)
    assert run([a, r], submission="assignments", staff=True) == ([a, r], [], [], 2)
    assert run([a, r]) == ([a, r], [], [], 2)
    monkeypatch.setattr(solutions, "SOLUTIONS", tmp_path / "solutions")  # a student release
    assert run([a, r], submission="assignments") == ([a], [r], [r], 1)
    assert run([a], submission="assignments", staff=True) == ([a], [], [], 1)


@pytest.mark.parametrize("options", [{"submission": "assignments", "staff": True}, {}])
def test_a_staff_run_without_solutions_refuses_reference_tests(monkeypatch, tmp_path, options):
    """Where solutions/ is absent (a student release), a staff run (``--staff``, or the suite
    on the reference itself) that would run a reference test is a usage error naming it and
    saying why, never a silent pass."""
    monkeypatch.setattr(solutions, "SOLUTIONS", tmp_path / "solutions")
    items = [FakeItem("a", sdpa, library), FakeItem("r", sdpa, by_reference)]
    with pytest.raises(
        pytest.UsageError, match=r"test_x\.py::r needs the reference solutions .* no attention\.py here"
    ):
        run(items, **options)
    assert run(items, exercise=["lstm"], **options)[0] == []  # dropped for another reason: no error


def test_a_reference_tests_record_is_a_hidden_record():
    """In staff grading a reference test is recorded as hidden: its message and exact outcome
    are dropped at the source, and it counts among the exercise's hidden tests."""
    record = plugin._record(FakeItem("r", sdpa, by_reference), TIMEOUT, "took 10 s on q=[...]")
    assert (record["hidden"], record["status"], record["message"]) == (True, FAILED, "")


def test_the_reference_fixtures_loader(monkeypatch, tmp_path):
    """The reference fixture's loader gives the reference module, and a failure saying why
    where solutions/ lacks the module (a student release)."""
    assert plugin.load_reference("attention") is solutions.load("attention")
    assert callable(plugin.load_reference("attention").scaled_dot_product_attention)
    monkeypatch.setattr(solutions, "SOLUTIONS", tmp_path / "solutions")
    with pytest.raises(pytest.fail.Exception, match=r"the reference of attention \(.*attention\.py\) is not here"):
        plugin.load_reference("attention")


def test_hints_come_from_the_catalog_or_the_fingerprints(monkeypatch, tmp_path):
    """With the reference at hand a public test's failure is diagnosed by the catalog; where
    it is absent (a student release), by the shipped fingerprints on the test's recording,
    for wrong values or a raised exception but not after a timeout; a hidden test never."""
    from grader.outcomes import PropertyFailure, StudentCodeError, WorkerTimeout
    from grader.testing import diagnose, fingerprints

    monkeypatch.setattr(diagnose, "hints", lambda exercise: (["catalog " + exercise], None))
    monkeypatch.setattr(fingerprints, "hints", lambda exercise, recording: ["fingerprint " + exercise])
    wrong = PropertyFailure("weights differ")
    public = FakeItem("a", sdpa, library)
    public.funcargs = {"impl": diagnose.Recording(SimpleNamespace(module="attention"))}
    assert plugin._hints(public, "attention.sdpa", wrong) == (["catalog attention.sdpa"], None)
    hidden = FakeItem("h", sdpa, library, pytest.mark.hidden)
    assert plugin._hints(hidden, "attention.sdpa", wrong) == (None, None)
    assert plugin._hints(FakeItem("r", sdpa, by_reference), "attention.sdpa", wrong) == (None, None)
    monkeypatch.setattr(solutions, "SOLUTIONS", tmp_path / "solutions")
    monkeypatch.setattr(fingerprints, "available", lambda module: False)
    assert plugin._hints(public, "attention.sdpa", wrong) == (None, None)
    monkeypatch.setattr(fingerprints, "available", lambda module: True)
    assert plugin._hints(public, "attention.sdpa", wrong) == (["fingerprint attention.sdpa"], None)
    raised = StudentCodeError("ValueError", "bad", "")
    assert plugin._hints(public, "attention.sdpa", raised) == (["fingerprint attention.sdpa"], None)
    assert plugin._hints(public, "attention.sdpa", WorkerTimeout("20 s")) == (None, None)
    assert plugin._hints(hidden, "attention.sdpa", wrong) == (None, None)


def test_a_tie_split_between_forked_children_is_decided_on_the_examples_of_both(monkeypatch, tmp_path):
    """``--fork-files`` on one test file: a child hands an undecided failure and its examples
    to the session's process, which decides it on every child's examples of that exercise in
    that test file, in the tests' order; another file's examples (a hidden file's recording)
    and a failure no other child shares stay out of it."""
    from grader.testing import diagnose

    public, hidden = "tests/exercises/test_attention.py", "tests/hidden/test_attention_hidden.py"
    items = [FakeItem(name, sdpa) for name in ("t0", "t1", "t2")]
    for n, item in enumerate(items):
        item.nodeid, item.path = f"{public}::t{n}", public
    alone = FakeItem("t3", pytest.mark.exercise("attention.heads"))
    alone.nodeid, alone.path = f"{public}::t3", public
    decided = []
    monkeypatch.setattr(diagnose, "refine", lambda pending, examples=None: decided.append(examples) or ["decided"])
    results = tmp_path / "results.jsonl"

    def recorder():
        made = plugin._Recorder(FakeConfig(results=str(results), progress=False))
        made._items = {item.nodeid: item for item in [*items, alone]}
        made._order = {item.nodeid: n for n, item in enumerate([*items, alone])}
        made.shared = SimpleNamespace(folder=tmp_path)
        return made

    def recording(tests):
        made = diagnose.Recording(SimpleNamespace(module="attention"))
        made._exercise = "attention.sdpa"
        for place in tests:
            made._epoch, made.steps = place, [f"example of test {place}"]
            made.archive()
        made.steps = []
        return made

    first, second = recorder(), recorder()  # t0 and t2 in the first child, t1 in the second
    first.recordings = [((public, ""), recording([0, 2])), ((hidden, ""), recording([9]))]
    second.recordings = [((public, ""), recording([1]))]
    pending = diagnose.Pending(None, "attention", "attention.sdpa", [], [])
    first.outcome = {items[2].nodeid: ("failed", "t2 failed"), alone.nodeid: ("failed", "t3 failed")}
    first.undecided = [(items[2], pending), (alone, pending)]
    session = SimpleNamespace()
    first.finish_child(session, [items[1]])
    assert decided == [None]  # t3's exercise ran in this child alone: decided here
    second.finish_child(session, [items[0], items[2]])
    decided.clear()
    recorder().after_children(session, SimpleNamespace(folder=tmp_path))
    assert decided == [[["example of test 0"], ["example of test 1"], ["example of test 2"]]]
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["nodeid"], r["message"]) for r in lines] == [
        (alone.nodeid, "t3 failed\n  hint: decided"),
        (items[2].nodeid, "t2 failed\n  hint: decided"),
    ]

    # examples that cannot be pickled: the child decides on its own ones instead of failing
    for left in tmp_path.glob("*.pickle"):
        left.unlink()
    decided.clear()
    third = recorder()
    third.recordings = [((public, ""), recording([0]))]
    third.outcome = {items[0].nodeid: ("failed", "t0 failed")}
    third.undecided = [(items[0], pending)]
    monkeypatch.setattr(plugin.pickle, "dumps", lambda *_: (_ for _ in ()).throw(TypeError("cannot pickle")))
    third.finish_child(session, [items[1]])
    assert decided == [None] and not list(tmp_path.glob("*.pickle")) and not list(tmp_path.glob("*.part"))


def test_device_tests_carry_their_cases_oracle():
    """A device case with a library oracle gives oracle("library") tests on every device; one
    without gives oracle("reference") tests (staff grading only)."""

    def build(gen):
        return (torch.zeros(2, dtype=torch.float64),), {}

    cases = [
        devices.DeviceCase("elbo.kl", "f", build, ("y",), oracle=lambda x: x),
        devices.DeviceCase("elbo.elbo", "g", build, ("y",)),
    ]
    test = devices.device_tests(__name__, cases)
    (parametrize,) = [m for m in test.pytestmark if m.name == "parametrize"]
    oracles = {}
    for param in parametrize.args[1]:
        marks = {m.name: m for m in param.marks}
        assert set(marks) == {"exercise", "device", "oracle"}
        oracles.setdefault(param.values[2].name, set()).add(marks["oracle"].args)
    assert oracles == {"f": {("library",)}, "g": {("reference",)}}


def _digests(test, monkeypatch) -> int:
    """How many times running the hypothesis ``test`` hashes a test's source."""
    import hypothesis.core

    calls = []
    real = hypothesis.core.function_digest
    monkeypatch.setattr(hypothesis.core, "function_digest", lambda f: calls.append(f) or real(f))
    test()
    return len(calls)


def test_a_hypothesis_test_without_a_database_gets_no_database_key(monkeypatch):
    """The grading profile keeps no example database: the hook sets the test's database key
    to None, so hypothesis hashes its source once (the derandomized seed), not twice; the
    examples stay the same.  A test with a database of its own keeps its key."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.database import InMemoryExampleDatabase

    def make(**chosen):
        seen = []

        @settings(**chosen)
        @given(st.integers(0, 1000))
        def test(x):
            seen.append(x)

        return test, seen

    plain, seen_plain = make()
    assert _digests(plain, monkeypatch) == 2
    keyless, seen_keyless = make()
    item = FakeItem("test_x")
    item.obj = keyless
    plugin.pytest_itemcollected(item)
    assert keyless._hypothesis_internal_database_key is None
    assert _digests(keyless, monkeypatch) == 1
    assert seen_keyless == seen_plain and len(seen_plain) >= 20

    own, _ = make(database=InMemoryExampleDatabase())
    item.obj = own
    plugin.pytest_itemcollected(item)
    assert not hasattr(own, "_hypothesis_internal_database_key")


def test_seeds_worked_out_before_the_fork_draw_the_same_examples(monkeypatch):
    """``before_tests`` sets each derandomized test's seed to the number hypothesis derives
    from the test's source: the test draws the same examples without hashing its source.
    A seed already set (a staff key's, or ``@seed``) stays."""
    from hypothesis import given, seed
    from hypothesis import strategies as st

    def make():
        seen = []

        @given(st.integers(0, 10**6), st.lists(st.integers(0, 9), max_size=4))
        def test(x, xs):
            seen.append((x, xs))

        return test, seen

    plain, seen_plain = make()
    plain()
    early, seen_early = make()
    item = FakeItem("test_x")
    item.obj = early
    plugin.pytest_itemcollected(item)  # no database key, as in a grading run
    plugin.before_tests([item])
    assert early._hypothesis_internal_use_seed is not None
    assert _digests(early, monkeypatch) == 0
    assert seen_early == seen_plain and len(seen_plain) >= 20

    chosen = seed(12345)(make()[0])
    item.obj = chosen
    plugin.before_tests([item])
    assert chosen._hypothesis_internal_use_seed == 12345


def test_hypothesis_leaves_the_global_random_states_alone():
    """Hypothesis would seed numpy's global ``RandomState``, the ``random`` module's and its
    own global PRNG with 0 around every example; the plugin takes all three off hypothesis's
    list (no grading test draws from them): inside an example each is the state the process
    had."""
    import random

    import numpy as np
    from hypothesis import core, given
    from hypothesis import strategies as st
    from hypothesis.internal import entropy

    np.random.seed(12345)
    random.seed(54321)
    own = core.threadlocal._hypothesis_global_random
    own.seed(6789)
    before = np.random.get_state()[1].copy(), random.getstate(), own.getstate()
    inside = []

    @st.composite
    def pair(draw):
        return draw(st.integers(0, 10)), draw(st.integers(0, 10))

    @given(pair())
    def test(x):
        inside.append((np.random.get_state()[1].copy(), random.getstate(), own.getstate()))

    test()
    assert inside and all(
        (np_state == before[0]).all() and state == before[1] and own_state == before[2]
        for np_state, state, own_state in inside
    )
    assert not any(
        isinstance(r, entropy.NumpyRandomWrapper) or r is random or r is own for r in entropy.RANDOMS_TO_MANAGE.values()
    )


def test_examples_do_not_depend_on_the_modules_loaded(monkeypatch, tmp_path):
    """Hypothesis would mix the literals of every loaded local module (the grader's, a loaded
    reference solution) into its draws; the plugin gives it an empty pool, so a seeded test
    draws the same examples before and after such a module is imported (one whose literals
    lie in the test's ranges)."""
    import importlib

    from hypothesis import given, seed, settings
    from hypothesis import strategies as st

    def draws():
        seen = []

        @seed(2024)
        @settings(max_examples=200)
        @given(st.integers(777770, 777780), st.floats(123456.0, 123457.0))
        def test(x, y):
            seen.append((x, y))

        test()
        return seen

    before = draws()
    (tmp_path / "grading_constants_module.py").write_text("MAGIC = 777777\nOTHER = 123456.5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "grading_constants_module", raising=False)
    importlib.import_module("grading_constants_module")
    after = draws()
    assert after == before and len(before) >= 200


def test_no_grading_code_draws_from_a_global_random_state():
    """What lets the plugin take the global ``RandomState`` of numpy and the ``random``
    module's off hypothesis's list: tests and the grader draw from seeded generators
    (``np.random.default_rng(seed)``, ``random.Random(seed)``) only."""
    import re

    from grader import ROOT

    global_draw = re.compile(
        r"\b(?:np|numpy)\.random\.(?!default_rng\b|Generator\b|SeedSequence\b|PCG64\b)\w+"
        r"|from\s+numpy\.random\s+import|from\s+numpy\s+import\s+[^\n]*\brandom\b"
        r"|(?<![\w.])random\.(?!Random\b)\w+|from\s+random\s+import"
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)}"
        for folder in ("grader", "tests/exercises", "tests/hidden", "solutions")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for text in [path.read_text(encoding="utf-8")]
        for match in global_draw.finditer(text)
    ]
    assert offenders == []
