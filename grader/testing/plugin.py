"""The pytest plugin behind every graded run.

It adds the options that choose the implementation under test (``--submission``,
``--adapter``), selects exercises (``--exercise``), records one JSON line per test for
the grader (``--results``), shows progress, and makes hypothesis deterministic: the same
submission always gets the same examples and so the same score.

Every exercise test declares its oracle, ``@pytest.mark.oracle("library" | "data" |
"reference")`` (see :mod:`grader.testing.selection`).  Only a reference test may take the
``reference`` fixture, the one way to the reference solutions; it runs only in staff
grading and is otherwise treated as a hidden test.
"""

import contextlib
import functools
import gc
import json
import os
import pickle
import random
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from hypothesis import HealthCheck, Phase, settings
from hypothesis import control as hypothesis_control
from hypothesis import core as hypothesis_engine
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.internal import entropy
from hypothesis.internal.conjecture import providers as hypothesis_providers
from hypothesis.strategies._internal import core as hypothesis_core
from hypothesis.vendor import pretty

from grader import ROOT, mistakes, rubric, staffkey
from grader.adapters import open_implementation
from grader.execution.calls import seed_all
from grader.outcomes import (
    FAILED,
    HIDDEN,
    PASSED,
    VALUE,
    BadOutput,
    PropertyFailure,
    StudentCodeError,
    SubmissionProblem,
)
from grader.testing import diagnose, lighter_hypothesis, selection
from grader.testing.forked import hypothesis_test
from grader.testing.skips import Unavailable

if TYPE_CHECKING:
    from grader.testing import forked

settings.register_profile(
    "grading",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=20,
    print_blob=False,
    report_multiple_bugs=False,
    # no Phase.explain: it re-runs a failing test many times to annotate the report
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("grading")


class _Unmanaged:
    """Stands in for a global PRNG hypothesis would manage, unregistered."""

    def seed(self, seed: int) -> None:
        """Nothing to seed."""

    def getstate(self) -> None:
        """No state."""

    def setstate(self, state: object) -> None:
        """Nothing to restore."""


_UNMANAGED = _Unmanaged()


_NO_CHECK = contextlib.nullcontext()


def _no_random_module_check(fmt: str, *args: Any) -> contextlib.nullcontext[None]:
    return _NO_CHECK  # a nullcontext can be entered again and again


def _leave_the_global_prngs_alone() -> None:
    """Take the global PRNGs of numpy, of ``random`` and of hypothesis itself off the ones
    hypothesis manages.

    Around every example hypothesis seeds, then restores, each PRNG it manages: numpy's global
    ``RandomState`` once numpy is loaded (torch loads it), 0.1 ms an example, and the
    ``random`` module's, with a fresh ``Random()`` seeded from the OS to note the state it
    set (0.04 ms); and around every draw of a composite strategy it compares the ``random``
    module's state before and after, to warn of strategies that use it (0.04 ms an example).
    No grading code draws from either global state (values come from a seeded
    ``torch.Generator``, ``np.random.default_rng(seed)`` or ``random.Random(seed)``;
    ``tests/selftest/unit/test_plugin.py`` holds the code to that), so hypothesis is told it
    has wrapped numpy's already, no longer finds ``random`` on its list, and skips the check.
    Hypothesis's own global PRNG, seeded and restored the same way (0.02-0.04 ms), draws the
    seed of tests neither derandomized nor seeded, and every grading test is one or the other
    (the grading profile derandomizes, a staff key sets each seed): it is created here, as
    hypothesis would create it, but never put on the list.
    """
    entropy.NP_RANDOM = _UNMANAGED
    for key, managed in list(entropy.RANDOMS_TO_MANAGE.items()):
        if isinstance(managed, entropy.NumpyRandomWrapper) or managed is random:
            del entropy.RANDOMS_TO_MANAGE[key]
    # a reusable nullcontext where hypothesis's is a generator-based one: the same protocol
    hypothesis_control.deprecate_random_in_strategy = _no_random_module_check  # type: ignore[assignment]
    hypothesis_core.deprecate_random_in_strategy = _no_random_module_check  # type: ignore[assignment]
    if hypothesis_engine.threadlocal._hypothesis_global_random is None:
        hypothesis_engine.threadlocal._hypothesis_global_random = random.Random()


def _examples_from_the_seed_alone() -> None:
    """Give hypothesis an empty pool of "local constants", so that a test's examples depend on
    its strategies and its seed only.

    Hypothesis mixes into its draws (one in twenty) the literals it finds in the source of the
    loaded modules it calls local, which here are the grader's (test files are left out) and the
    reference solutions once loaded; the pool grows whenever a module is imported.  So the
    examples of a grading run depended on which of those happened to be loaded at each draw:
    the watch mode's server loads other grader modules than a cold check, a failing test loads
    the reference for its diagnosis and changed the pool of every test after it, and a new int
    literal in the grader changed a few examples.  Scanning the modules also cost each test
    process 0.1-0.2 s.  Hypothesis's own constants (0, 1, -1, the float edge cases...) stay.
    """
    empty = hypothesis_providers.Constants()
    hypothesis_providers._get_local_constants = lambda: empty


_leave_the_global_prngs_alone()
_examples_from_the_seed_alone()
lighter_hypothesis.install()


def _pretty_tensor(obj: torch.Tensor, printer: Any, cycle: bool) -> None:
    """How hypothesis shows a tensor argument in its "Falsifying example" note: the values of
    a small one, the shape of a large one.  torch's own repr costs about 0.7 ms a tensor, and
    hypothesis writes the note for every explicit example, failing or not."""
    dtype = str(obj.dtype).removeprefix("torch.")
    where = "" if obj.device.type == "cpu" else f", device={obj.device.type!r}"
    if obj.device.type == "meta" or obj.numel() > 16:
        printer.text(f"tensor(shape={tuple(obj.shape)}, dtype={dtype}{where})")
        return
    printer.text(f"tensor({_nested(obj.detach().cpu().tolist())}, dtype={dtype}{where})")


def _nested(values: Any) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_nested(v) for v in values) + "]"
    return f"{values:.4g}" if isinstance(values, float) else repr(values)


pretty.for_type_by_name("torch", "Tensor", _pretty_tensor)
pretty.for_type_by_name("torch.nn.parameter", "Parameter", _pretty_tensor)

#: The reference solutions (absent from a student release).
REFERENCE_DIR = ROOT / "solutions"
#: Where the run keeps its recorder and the parsed ``--submissions`` file.
_RECORDER = pytest.StashKey["_Recorder"]()
_SUBMISSIONS = pytest.StashKey[list]()
_HYPOTHESIS_HOME = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("grader", "DL Basic autograder")
    group.addoption(
        "--submission",
        default=None,
        help="folder with attention.py, lstm.py, ... to test (default: solutions/, or assignments/ where there is "
        "no solutions/, as in the student release)",
    )
    group.addoption(
        "--adapter",
        default=None,
        help="sandbox (isolated worker; the default for any --submission) or inprocess "
        "(trusted code only; the default for the reference)",
    )
    group.addoption(
        "--exercise", action="append", default=[], help="only the tests of this exercise ID or module (repeatable)"
    )
    group.addoption("--results", default=None, help="append one JSON line per graded test to this file")
    group.addoption(
        "--submissions",
        default=None,
        help="JSON file [{id, path, exercises}]: grade several submissions in one run, each test "
        "only for the listed exercises of each (the catalog and the runner use this)",
    )
    group.addoption(
        "--staff", action="store_true", help="also run the hidden tests and the reference tests (staff grading)"
    )
    group.addoption("--progress", action="store_true", help="show a progress bar on stderr")
    group.addoption(
        "--device",
        action="append",
        default=[],
        help="devices for the device tests: cpu, meta, cuda or all (repeatable; default: cpu and meta, "
        "plus cuda when available)",
    )
    group.addoption(
        "--zygote-fd",
        type=int,
        default=None,
        help="the control socket of a sandbox zygote the grading runner started beforehand (inherited fd)",
    )
    group.addoption(
        "--fork-files",
        action="store_true",
        help="run each test file in a process of its own, side by side (forked after collection; "
        "a local check uses this to grade on every core)",
    )
    group.addoption(
        "--isolation",
        default=None,
        choices=("namespaces", "landlock", "uid"),
        help="the isolation every sandbox worker must reach (staff grading: what the runner's preflight found); "
        "a worker below it is refused",
    )
    group.addoption(
        "--no-shrink",
        action="store_true",
        help="report the first failing example instead of the smallest (faster; for the catalog run)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Hypothesis keeps a cache (.hypothesis/) in the working directory: grading leaves no
    # file in the student's folder or the release, so it goes to a folder of this run.
    config.stash[_HYPOTHESIS_HOME] = tempfile.mkdtemp(prefix="grader-hypothesis-")
    set_hypothesis_home_dir(config.stash[_HYPOTHESIS_HOME])
    # The tensors are tiny: one intra-op thread is several times faster than a pool (thread
    # hand-offs dominate), and grading processes run side by side on a busy machine.
    torch.set_num_threads(1)
    if config.getoption("--no-shrink", False):
        settings.register_profile(
            "grading-no-shrink", settings.get_profile("grading"), phases=(Phase.explicit, Phase.reuse, Phase.generate)
        )
        settings.load_profile("grading-no-shrink")
    if not (config.getoption("--submission") or config.getoption("--submissions")) and not REFERENCE_DIR.is_dir():
        # a student release has no reference: the tests check the student's own folder
        config.option.submission = str(ROOT / "assignments")
    _use_staff_key(config)
    if config.getoption("--isolation", None):
        from grader.execution import isolation

        isolation.required = config.getoption("--isolation")
    fd = config.getoption("--zygote-fd", None)
    if fd is not None:
        from grader.adapters import zygote

        zygote.adopt(fd)
    config.addinivalue_line("markers", "exercise(id, weight=1): the exercise (grader/rubric.py) a test grades")
    config.addinivalue_line("markers", "hidden: a test run only in staff grading; students see 'hidden, graded later'")
    config.addinivalue_line("markers", "device(name): a device test (cpu, meta, cuda)")
    config.addinivalue_line(
        "markers",
        "oracle(kind): where an exercise test's expected values come from: library (torch, closed forms, "
        "brute force, a property), data (shipped files) or reference (solutions/: staff grading only)",
    )
    config.stash[_RECORDER] = _Recorder(config)
    config.pluginmanager.register(config.stash[_RECORDER], "grader-recorder")
    if config.getoption("--fork-files", False):
        from grader.testing import forked

        recorder = config.stash[_RECORDER]
        forked.install(config, functools.partial(_share, config), recorder.finish_child, recorder.after_children)


def _share(config: pytest.Config, shared: "forked.Shared") -> None:
    """Before ``--fork-files`` forks: the children share the zygote (one request at a time),
    each submission's time budget and the progress count."""
    from grader.adapters import sandboxed, zygote

    running = zygote.current()
    if running is not None:  # otherwise each child starts its own on first use
        running.share(shared.lock)
    entries = _submissions(config) or []
    folders = [e["path"] for e in entries] or [config.getoption("--submission") or str(REFERENCE_DIR)]
    for folder in folders:
        sandboxed.share_budget(folder, shared.lock)
    config.stash[_RECORDER].shared = shared
    before_tests(config.stash[_RECORDER]._items.values())


def before_tests(items: Iterable[pytest.Item]) -> None:
    """What each forked child would otherwise work out for itself, done once before the fork
    (while the zygote still imports torch, so off the critical path).

    * Each derandomized test's seed: hypothesis hashes the test's source for it every time
      the test runs (``Random(int_from_bytes(function_digest(test)))``); the same number is
      set as ``@seed`` sets one, so the test draws the same examples.  A seed already set (a
      staff key's) stays.
    """
    from hypothesis.internal.compat import int_from_bytes
    from hypothesis.internal.reflection import function_digest

    for item in items:
        found = hypothesis_test(item)
        if found is None or found[0]._hypothesis_internal_use_seed is not None:
            continue
        test, chosen = found
        if chosen.derandomize:
            test._hypothesis_internal_use_seed = int_from_bytes(function_digest(test.hypothesis.inner_test))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's hypothesis folder."""
    home = config.stash.get(_HYPOTHESIS_HOME, None)
    if home:
        set_hypothesis_home_dir(None)
        shutil.rmtree(home, ignore_errors=True)


def _use_staff_key(config: pytest.Config) -> None:
    """Staff grading with a secret key (:mod:`grader.staffkey`): with ``--staff`` and a key
    from the runner's pipe (``GRADER_STAFF_KEY_FD``) or ``GRADER_STAFF_KEY``, tensor values
    and hypothesis draws depend on the key; without one they are the public, local ones."""
    try:
        sent = staffkey.receive()  # always: the pipe is closed whatever happens
        key = (sent or staffkey.from_environment()) if config.getoption("--staff") else None
    except staffkey.StaffKeyError as exc:
        raise pytest.UsageError(str(exc)) from None
    staffkey.install(key)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Under a staff key, each hypothesis test runs from ``HMAC(key, its path::name)``
    (what ``@seed`` sets) instead of its derandomized seed; every other setting of the
    profile stays as it is.  A test without an example database gets no database key
    (hypothesis would hash the test's source for one on every run, to key nothing)."""
    found = hypothesis_test(item)
    if found is None:
        return
    test, chosen = found
    if chosen.database is None:
        test._hypothesis_internal_database_key = None
    if staffkey.installed() is None:
        return
    try:
        where = Path(item.path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        where = Path(item.path).name
    test._hypothesis_internal_use_seed = staffkey.hypothesis_seed(f"{where}::{test.__qualname__}")


def implementation_fixture(module: str) -> Any:
    """A module-scoped ``impl`` fixture: the submission's ``module`` behind the adapter.

    With ``--submissions`` it is parametrized over those submissions (one worker each).
    """

    @pytest.fixture(scope="module")
    def impl(request: pytest.FixtureRequest) -> Iterator[diagnose.Recording]:
        entry = getattr(request, "param", None)
        folder = entry["path"] if entry else request.config.getoption("--submission")
        adapter = request.config.getoption("--adapter") or ("sandbox" if folder else "inprocess")
        where = folder or str(ROOT / "solutions")
        try:
            opened = open_implementation(where, module, adapter)
        except SubmissionProblem as exc:
            _note_measures(request.config, entry, exc.measures)
            raise
        _note_measures(request.config, entry, getattr(opened, "measures", None))
        implementation = diagnose.Recording(opened, functools.partial(open_implementation, where, module, adapter))
        recorder = request.config.stash.get(_RECORDER, None)
        if recorder is not None and recorder.shared is not None:  # a forked child may hand its examples over
            recorder.recordings.append((_recording_of(request.path, entry), implementation))
        yield implementation
        implementation.close()

    return impl


@pytest.fixture(scope="module")
def reference(request: pytest.FixtureRequest) -> types.ModuleType:
    """The reference solution of the test file's module (its ``MODULE``, else the ``<module>``
    of ``test_<module>.py``), loaded in this trusted process (:func:`load_reference`).

    Only tests marked ``@pytest.mark.oracle("reference")`` may take it: the selection refuses
    any other at collection (a usage error), and reference tests run only in staff grading.
    Module-scoped, so hypothesis tests may take it (the reference holds no state)."""
    module = getattr(request.module, "MODULE", None) or Path(str(request.path)).stem.removeprefix("test_")
    return load_reference(module)


def _solutions() -> types.ModuleType | None:
    """:mod:`grader.testing.reference`, or ``None`` in a student release (which ships no
    loader of the reference it does not have)."""
    try:
        from grader.testing import reference
    except ImportError:
        return None
    return reference


def reference_here(module: str) -> bool:
    """Whether this checkout holds the reference of ``module`` (a student release does not)."""
    solutions = _solutions()
    return solutions is not None and solutions.available(module)


def public_tests(module: str) -> types.ModuleType:
    """The public test file of ``module`` (``tests/exercises/test_<module>.py``), imported by
    path under a private name: the hidden tests (``tests/hidden/``) reuse its cases and oracles."""
    import importlib.util

    name = f"_public_tests_{module}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "exercises" / f"test_{module}.py")
        assert spec is not None and spec.loader is not None, f"no public tests for {module}"
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        spec.loader.exec_module(loaded)
    return sys.modules[name]


def load_reference(module: str) -> types.ModuleType:
    """The reference of ``module`` (``solutions/<module>.py``); where this checkout lacks it
    (a student release has no ``solutions/``), a failure that says so."""
    solutions = _solutions()
    if solutions is None or not solutions.available(module):
        pytest.fail(
            f"the reference of {module} ({REFERENCE_DIR / module}.py) is not here (a student release has no "
            "solutions/): reference tests run only in staff grading with solutions/",
            pytrace=False,
        )
    return solutions.load(module)


def _note_measures(config: pytest.Config, entry: dict | None, measures: Any) -> None:
    """Append the sandbox's isolation measures for this worker to the results file (the
    runner turns the fallbacks among them into the report's notes)."""
    if measures is not None:
        _append(config.getoption("--results"), {"sandbox": measures, "submission": entry["id"] if entry else ""})


def _append(path: str | None, record: dict) -> None:
    """Append ``record`` as one JSON line to the results file ``path`` (if any), at once.

    One ``write`` of the whole line to a file opened for appending: lines from processes
    writing side by side (``--fork-files``) never interleave, and a line written is kept
    when the process dies right after."""
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
        finally:
            os.close(fd)


def _submissions(config: pytest.Config) -> list[dict] | None:
    path = config.getoption("--submissions")
    if not path:
        return None
    if _SUBMISSIONS not in config.stash:
        with open(path, encoding="utf-8") as fh:
            config.stash[_SUBMISSIONS] = json.load(fh)
    return config.stash[_SUBMISSIONS]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    entries = _submissions(metafunc.config)
    if entries and "impl" in metafunc.fixturenames:
        metafunc.parametrize("impl", entries, indirect=True, scope="module", ids=[e["id"] for e in entries])


def _recording_of(test_file: Path, entry: dict | None) -> tuple[str, str]:
    """Which ``impl`` recording a test uses: the module-scoped one of its test file and its
    ``--submissions`` entry (none in a single-submission run)."""
    return str(test_file), entry["path"] if entry else ""


def _scope(item: pytest.Item) -> tuple[str, str, str]:
    """Where an undecided hint of ``item`` looks for more examples: its recording
    (:func:`_recording_of`), those of its exercise."""
    found = exercise_of(item)
    return (*_recording_of(item.path, submission_of(item)), found[0] if found else "")


def submission_of(item: pytest.Item) -> dict | None:
    """The ``--submissions`` entry a test item grades (``None`` in a single-submission run)."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("impl") if callspec is not None else None


@pytest.fixture(autouse=True)
def _seeded() -> Iterator[None]:
    """Every test starts from the same torch seed and default dtype."""
    seed_all(0)  # as the worker seeds each call: torch.manual_seed's state, without its cost on a CPU
    torch.set_default_dtype(torch.float32)
    yield


def exercise_of(item: pytest.Item) -> tuple[str, float] | None:
    """``(exercise ID, weight)`` of a graded test item, or ``None``."""
    marker = item.get_closest_marker("exercise")
    if marker is None:
        return None
    return marker.args[0], marker.kwargs.get("weight", 1)


def oracle_of(item: pytest.Item) -> object:
    """The kind of an item's ``@pytest.mark.oracle(kind)`` (``None`` without one; a marker
    with other than one argument gives its arguments, which selection refuses)."""
    marker = item.get_closest_marker("oracle")
    if marker is None:
        return None
    return marker.args[0] if len(marker.args) == 1 and not marker.kwargs else (*marker.args, *marker.kwargs.items())


def is_hidden(item: pytest.Item) -> bool:
    """Whether a test is hidden from students: marked ``hidden``, or its oracle is the
    reference.  Its message is dropped, it is never diagnosed, and a student's run lists it
    as "hidden, graded later"."""
    return bool(item.get_closest_marker("hidden")) or oracle_of(item) == selection.REFERENCE


def kind_of(item: pytest.Item) -> str:
    """``"value"`` (compares values with an oracle) or ``"property"`` (a property a constant
    output could satisfy; it earns credit only with the values, see grader/grading/scoring.py)."""
    marker = item.get_closest_marker("exercise")
    kind = marker.kwargs.get("kind", VALUE) if marker is not None else VALUE
    try:
        return selection.check_kind(item.nodeid, kind)
    except selection.SelectionError as exc:
        raise pytest.UsageError(str(exc)) from None


def _record(item: pytest.Item, status: str, message: str) -> dict:
    """The JSON record of one test; a hidden test's message is dropped here, at the source."""
    found = exercise_of(item)
    assert found is not None, "only graded tests are recorded"
    ex_id, weight = found
    hidden = is_hidden(item)
    if hidden:
        message = ""
        status = status if status in (PASSED, HIDDEN, "pending") else FAILED
    entry = submission_of(item)
    return {
        "nodeid": item.nodeid,
        "exercise": ex_id,
        "weight": weight,
        "status": status,
        "hidden": hidden,
        "message": message,
        "property": _property(item),
        "submission": entry["id"] if entry else "",
        "kind": kind_of(item),
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests this run grades (the rules are :func:`grader.testing.selection.decide`);
    hidden tests a student's run drops are kept aside, to be listed as "hidden, graded later"."""
    wanted = set(config.getoption("--exercise"))
    # hidden tests run in staff grading and when the suite tests the reference itself
    staff = selection.is_staff_run(
        config.getoption("--staff"), config.getoption("--submission"), config.getoption("--submissions")
    )
    devices = selected_devices(config.getoption("--device"))
    available: dict[str, bool] = {}
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        decision = _decide(item, wanted, devices, staff, available)
        if decision.hidden:
            config.stash[_RECORDER].hidden.append(item)
        (keep if decision.keep else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    config.stash[_RECORDER].total = len(items)


def _decide(
    item: pytest.Item, wanted: set[str], devices: set[str], staff: bool, available: dict[str, bool] | None = None
) -> selection.Decision:
    """The selection rules applied to ``item``'s markers; a broken marker is a usage error.
    ``available`` caches, per module, whether ``solutions/`` holds its reference."""
    found = exercise_of(item)
    marker = item.get_closest_marker("exercise")
    device = item.get_closest_marker("device")
    entry = submission_of(item) if found is not None else None
    oracle = oracle_of(item)
    reference_available = True
    if found is not None and oracle == selection.REFERENCE and staff:
        module = str(found[0]).split(".")[0]
        cache = {} if available is None else available
        reference_available = cache.setdefault(module, reference_here(module))
    try:
        return selection.decide(
            item.nodeid,
            found[0] if found else None,
            known=rubric.BY_ID,
            kind=marker.kwargs.get("kind", VALUE) if marker is not None else VALUE,
            uses_impl="impl" in getattr(item, "fixturenames", ()),
            device=device.args[0] if device is not None else None,
            hidden=bool(item.get_closest_marker("hidden")),
            oracle=oracle,
            uses_reference="reference" in getattr(item, "fixturenames", ()),
            entry_exercises=entry["exercises"] if entry is not None else None,
            wanted=wanted,
            devices=devices,
            staff=staff,
            reference_available=reference_available,
        )
    except selection.SelectionError as exc:
        raise pytest.UsageError(str(exc)) from None


def selected_devices(requested: list[str]) -> set[str]:
    """The devices named by ``--device`` values (``all``, comma lists).  Default: all of them;
    without a GPU the cuda tests are then skipped with the reason stated, never silently."""
    try:
        return selection.selected_devices(requested)
    except selection.SelectionError as exc:
        raise pytest.UsageError(str(exc)) from None


def _hints(
    item: pytest.Item, exercise: str, exc: BaseException
) -> tuple[list[str], diagnose.Pending | None] | tuple[None, None]:
    """The hint lines for a failure of ``item`` (a test of ``exercise``): from the catalog
    where the reference is here (:func:`diagnose.hints`), else from shipped fingerprints (a
    student release, :mod:`grader.testing.fingerprints`).  A hidden test's message is never
    shown, so it is never diagnosed; nor is code that hung or crashed its worker (the
    fingerprint cases would run it again)."""
    from grader.testing import fingerprints

    module = exercise.split(".")[0]
    if is_hidden(item):
        return None, None
    if reference_here(module):
        return diagnose.hints(exercise)
    recording = getattr(item, "funcargs", {}).get("impl")
    if not isinstance(recording, diagnose.Recording) or not fingerprints.available(module):
        return None, None
    if not isinstance(exc, (PropertyFailure, StudentCodeError, BadOutput)):
        return None, None
    return fingerprints.hints(exercise, recording), None


def _root_cause(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe_failure(
    item: pytest.Item, exc: BaseException, pending: list[diagnose.Pending] | None = None
) -> tuple[str, str]:
    """``(status, message)`` for a test that raised ``exc``.  A catalog mistake that the
    failing calls match is named in a hint; when several tie, the :class:`diagnose.Pending`
    is appended to ``pending`` for the end of the run."""
    exc = _root_cause(exc)
    found = exercise_of(item)
    named, undecided = _hints(item, found[0], exc) if found else (None, None)
    if undecided is not None and pending is not None:
        pending.append(undecided)
    named = None if named is None else [f"  hint: {h}" for h in named]
    if isinstance(exc, PropertyFailure):
        return exc.status, exc.text(named)
    if isinstance(exc, SubmissionProblem):
        return exc.status, "\n".join([str(exc), *(named or [])])
    doc = (getattr(item, "obj", None).__doc__ or "").strip().splitlines()
    prop = doc[0] if doc else item.name
    notes = [n for n in getattr(exc, "__notes__", []) if n.startswith("Falsifying")]
    text = f"{prop}\n  {type(exc).__name__}: {exc}".rstrip()
    if notes:
        text += "\n  " + notes[0].replace("\n", "\n  ")
    return FAILED, text


class _Recorder:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.path = config.getoption("--results")
        self.progress = config.getoption("--progress")
        self.hidden: list[pytest.Item] = []
        self.total = 0
        self.done = 0
        self.shared: Any = None  # the count of finished tests, shared by --fork-files children
        self.started = time.monotonic()
        self.outcome: dict[str, tuple[str, str]] = {}
        self.undecided: list[tuple[pytest.Item, diagnose.Pending]] = []
        # ((test file, submission), its impl's recording), kept in a forked child only
        self.recordings: list[tuple[tuple[str, str], diagnose.Recording]] = []
        self._items: dict[str, pytest.Item] = {}
        self._order: dict[str, int] = {}  # nodeid -> its place in the session

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Failures whose matching mistakes tied: decide with every example of the exercise
        # and re-record them with the hint (a record's last line wins).
        for item, pending in self.undecided:
            self._decided(item, self.outcome[item.nodeid], diagnose.refine(pending))

    def _decided(self, item: pytest.Item, outcome: tuple[str, str], hints: list[str]) -> None:
        status, message = outcome
        if hints and not is_hidden(item):
            self._write(_record(item, status, "\n".join([message, *(f"  hint: {h}" for h in hints)])))

    def finish_child(self, session: pytest.Session, elsewhere: Sequence[pytest.Item]) -> None:
        """The end of a ``--fork-files`` child.  An undecided failure whose :func:`_scope` (its
        exercise's tests in its test file) also ran in another child is handed, with this
        child's examples of that scope, to the session's process (:meth:`after_children`),
        which decides it on the examples of both; the others are decided here, as a single
        process would."""
        spread = {_scope(item) for item in elsewhere if exercise_of(item) is not None}
        handed: list[tuple[pytest.Item, diagnose.Pending]] = []
        here: list[tuple[pytest.Item, diagnose.Pending]] = []
        for item, pending in self.undecided:
            (handed if _scope(item) in spread else here).append((item, pending))
        self.undecided = here
        evidence: dict[tuple[str, str, str], list] = {}
        for where, recording in self.recordings:
            for exercise, pairs in recording.evidence({s[2] for s in spread if s[:2] == where}).items():
                evidence.setdefault((*where, exercise), []).append(pairs)
        if evidence or handed:
            failures = [
                (item.nodeid, self.outcome[item.nodeid], replace(pending, recording=None)) for item, pending in handed
            ]
            try:  # in one dump, so that `is` holds across it
                data = pickle.dumps({"evidence": evidence, "failures": failures})
            except (pickle.PicklingError, TypeError, AttributeError):
                self.undecided += handed  # what cannot travel is decided here, on this child's examples
            else:
                fd, part = tempfile.mkstemp(suffix=".part", dir=self.shared.folder)
                with open(fd, "wb") as fh:
                    fh.write(data)
                os.replace(part, part.removesuffix(".part") + ".pickle")  # whole or not at all
        self.pytest_sessionfinish(session)

    def after_children(self, session: pytest.Session, shared: "forked.Shared") -> None:
        """In the session's process once its ``--fork-files`` children ended: decide the
        failures they handed over (:meth:`finish_child`) on the examples of every child, merged
        in the tests' order (:func:`diagnose.merge`)."""
        evidence: dict[tuple[str, str, str], list] = {}
        failures = []
        for path in sorted(shared.folder.glob("*.pickle")):
            with open(path, "rb") as fh:
                left = pickle.load(fh)
            for scope, lists in left["evidence"].items():
                evidence.setdefault(scope, []).extend(lists)
            failures += left["failures"]
        failures.sort(key=lambda failure: self._order.get(failure[0], 0))
        for nodeid, outcome, pending in failures:
            item = self._items[nodeid]
            self._decided(item, outcome, diagnose.refine(pending, diagnose.merge(evidence.get(_scope(item), []))))

    def _write(self, record: dict) -> None:
        _append(self.path, record)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Every selected test is recorded as pending first: if the run dies, the runner
        # knows which tests never finished and scores them as lost.
        for item in session.items:
            if exercise_of(item) is not None:
                self._write(_record(item, "pending", ""))
        for item in self.hidden:
            found = exercise_of(item)
            entry = submission_of(item)
            exercises = entry["exercises"] if entry is not None else None
            if found is None or not selection.in_submission(found[0], exercises):
                continue
            self._write(_record(item, HIDDEN, ""))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, None]:
        found = exercise_of(item)
        diagnose.reset(self._order.get(item.nodeid))
        with mistakes.focus(found[0] if found else None):  # hints prefer the mistakes of this exercise
            yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, None]:
        outcome = yield
        report = outcome.get_result()
        found = exercise_of(item)
        if found is None:
            return
        if report.failed and item.nodeid not in self.outcome:
            assert call.excinfo is not None, "a failed test has an exception"
            pending: list[diagnose.Pending] = []
            with mistakes.focus(found[0]):
                self.outcome[item.nodeid] = describe_failure(item, call.excinfo.value, pending)
            if pending:
                self.undecided.append((item, pending[0]))
        elif report.when == "call" and report.passed:
            self.outcome.setdefault(item.nodeid, (PASSED, ""))
        elif report.skipped and item.nodeid not in self.outcome:
            reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
            trusted = call.excinfo is not None and isinstance(call.excinfo.value, Unavailable)
            # only the grader's own decision removes a test from the denominator
            self.outcome[item.nodeid] = (
                ("skipped", reason)
                if trusted
                else (FAILED, f"{_property(item)}\n  the test was skipped without a reason the grader trusts: {reason}")
            )

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple) -> None:
        item_outcome = self.outcome.get(nodeid)
        item = self._items.get(nodeid)
        self.done = self.shared.count_done() if self.shared is not None else self.done + 1
        if item is not None and item_outcome is not None:
            self._write(_record(item, *item_outcome))
        if self.progress:
            capman = self.config.pluginmanager.getplugin("capturemanager")
            with capman.global_and_fixture_disabled():
                self._show(item)

    def _show(self, item: pytest.Item | None) -> None:
        width = 24
        filled = width * self.done // max(self.total, 1)
        elapsed = time.monotonic() - self.started
        eta = elapsed / max(self.done, 1) * (self.total - self.done)
        found = exercise_of(item) if item is not None else None
        name = found[0] if found else ""
        sys.stderr.write(
            f"\r  grading [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
            f"  ETA {eta:4.0f}s  {name:<32}"
        )
        if self.done >= self.total:
            sys.stderr.write("\r" + " " * 90 + "\r")
        sys.stderr.flush()


def _property(item: pytest.Item) -> str:
    doc = (getattr(item, "obj", None).__doc__ or "").strip().splitlines()
    return doc[0] if doc else item.name


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    recorder = session.config.stash[_RECORDER]
    recorder._items = {item.nodeid: item for item in session.items}
    recorder._order = {item.nodeid: place for place, item in enumerate(session.items)}
    # torch, hypothesis and the tests are loaded and stay: later collections (hypothesis
    # runs a full one per test it sets up) need not walk them again.
    gc.freeze()
