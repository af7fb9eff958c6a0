"""Hypothesis's bookkeeping around each example, made cheaper without changing what it draws.

A grading run executes about 2,100 examples, and around each one hypothesis (6.155, the
pinned version) does work that a grading run never needs, measured per example:

* **the wrapper of the test** (``proxies``, 0.06 ms): ``execute_once`` builds a new
  function with the test's signature for every example, from source text through
  ``inspect.signature`` twice and a copy of the code object.  :func:`install` builds it
  once per test and lets it call the example's own closure (:class:`_OneWrapper`).
* **verbosity comparisons** (0.008 ms each, two or three an example): ``Verbosity``
  orders its members by building a dict of their names at each comparison.  The same
  order, looked up in a table.
* **a strategy's memoized properties** (``is_empty``, asked at every draw: 1-2 us each,
  tens of draws an example): the memoized value is read through two ``getattr`` calls of
  which the first raises ``AttributeError``.  It is read from the strategy's ``__dict__``
  first; anything not there still goes through hypothesis's own code.
* **thread-local state** (``unwrap_strategies`` at every draw reads two thread-local
  values through ``ThreadLocal.__getattr__``: a membership test, a ``hasattr`` and a
  ``getattr`` each): a value this thread already holds is read from its dict.
* **unwrapping lazy strategies** (``unwrap_strategies`` at every draw: ``st.integers(...)``
  and the like are lazy, and the unwrapped strategy is looked for again at each draw, with
  two ``AttributeError`` raised and caught on the way): the result of a completed unwrap is
  kept on the lazy strategy, whose wrapped strategy never changes once built.
* **the size of each choice** (``choices_size([value])`` at every draw serializes the value
  to count its bytes): counted without serializing for booleans, floats and ints of up to
  30 bytes, by the same rule ``choices_to_bytes`` writes them.

Each change keeps what hypothesis computes: the same choices, the same examples, the same
reports (``tests/selftest/unit/test_lighter_hypothesis.py`` compares draws, wrappers and
values with hypothesis's own, put back for the comparison by :func:`unpatched`; a full
check sends its workers the same requests, byte for byte).  With another hypothesis
version than the one these were written for, :func:`install` changes nothing.
"""

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import hypothesis
from hypothesis import Verbosity
from hypothesis import core as hypothesis_core
from hypothesis.internal.conjecture import data as hypothesis_data
from hypothesis.strategies._internal import lazy as hypothesis_lazy
from hypothesis.strategies._internal import strategies as hypothesis_strategies
from hypothesis.utils.threading import ThreadLocal

#: The hypothesis version whose internals these changes were written against (compared with
#: ``hypothesis.__version__``).
WRITTEN_FOR = "6.155.2"


class _OneWrapper:
    """``proxies(target)`` for one test, built once: the wrapper calls whatever closure
    the current example gave it (a thread runs one example of a test at a time)."""

    def __init__(self, target: Callable[..., Any], real_proxies: Callable[..., Any]) -> None:
        self.local = threading.local()

        def current(*args: Any, **kwargs: Any) -> Any:
            return self.local.proxy(*args, **kwargs)

        self.wrapper = real_proxies(target)(current)

    def accept(self, proxy: Callable[..., Any]) -> Callable[..., Any]:
        """The test's wrapper, now calling ``proxy``."""
        self.local.proxy = proxy
        return self.wrapper


def _once_per_test(real_proxies: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    built: dict[Callable[..., Any], _OneWrapper] = {}

    def proxies(target: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        one = built.get(target)
        if one is None:
            one = built[target] = _OneWrapper(target, real_proxies)
        return one.accept

    return proxies


def _verbosity_order() -> dict[str, Callable[[Any, Any], bool]]:
    """``Verbosity``'s comparisons by the members' own order (hypothesis's ``_int_value``),
    looked up instead of rebuilt at each comparison; ints compare as hypothesis's do."""
    rank = {member.value: Verbosity._int_value(member) for member in Verbosity}

    def key(value: Any) -> Any:
        return rank[value.value] if isinstance(value, Verbosity) else value

    return {
        "__gt__": lambda self, other: rank[self.value] > key(other),
        "__ge__": lambda self, other: rank[self.value] >= key(other),
        "__lt__": lambda self, other: rank[self.value] < key(other),
        "__le__": lambda self, other: rank[self.value] <= key(other),
    }


_MISSING = object()


def _memoized(name: str) -> property:
    """``SearchStrategy.<name>`` read from the instance's ``__dict__`` where hypothesis has
    put it (``force_<name>`` before ``cached_<name>``, as ``recursive_property`` reads
    them); otherwise through hypothesis's own property."""
    force, cached = f"force_{name}", f"cached_{name}"
    slow = getattr(hypothesis_strategies.SearchStrategy, name).fget

    def fast(self: Any) -> Any:
        own = self.__dict__
        value = own.get(force, _MISSING)
        if value is _MISSING:
            value = own.get(cached, _MISSING)
            if value is _MISSING or hasattr(type(self), force):
                return slow(self)
        return value

    return property(fast)


def _thread_local_reads(slow: Callable[[ThreadLocal, str], Any]) -> Callable[[ThreadLocal, str], Any]:
    def read(self: ThreadLocal, name: str) -> Any:
        value = self._ThreadLocal__threadlocal.__dict__.get(name, _MISSING)
        return slow(self, name) if value is _MISSING else value

    return read


def _unwrap_once(slow: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``unwrap_strategies`` remembering, on each lazy strategy, the strategy its chain of
    wrapped strategies ends in (each link is built once, so the end never changes).  A
    chain that loops back on itself ends in no such strategy (hypothesis then gives one of
    the chain's own, depending on where it started): that answer is not kept."""
    lazy_kinds = (hypothesis_lazy.LazyStrategy, hypothesis_lazy.DeferredStrategy)

    def unwrap_strategies(s: Any) -> Any:
        if not isinstance(s, lazy_kinds):
            return s
        done = s.__dict__.get("_grader_unwrapped", _MISSING)
        if done is _MISSING:
            done = slow(s)
            if not isinstance(done, lazy_kinds):
                s.__dict__["_grader_unwrapped"] = done
            return done
        forced = s.__dict__.get("force_has_reusable_values", _MISSING)
        if forced is not _MISSING:  # what the real one copies over at each unwrap
            done.force_has_reusable_values = forced
        return done

    return unwrap_strategies


def _choices_size(slow: Callable[[Any], int]) -> Callable[[Any], int]:
    """``choices_size`` counting one plain choice without serializing it (``choices_to_bytes``
    writes a bool as 1 byte, a float as a tag byte and 8, an int as a tag byte and
    ``1 + bit_length // 8`` bytes, the size inline in the tag below 31)."""

    def choices_size(choices: Any) -> int:
        if type(choices) is list and len(choices) == 1:
            kind = type(value := choices[0])
            if kind is bool:
                return 1
            if kind is float:
                return 9
            if kind is int and (size := 1 + value.bit_length() // 8) < 31:
                return 1 + size
        return slow(choices)

    return choices_size


def _replacements() -> list[tuple[Any, str, Any]]:
    """``(owner, attribute, new value)`` for each change, built from hypothesis's own."""
    strategy = hypothesis_strategies.SearchStrategy
    return [
        (hypothesis_core, "proxies", _once_per_test(hypothesis_core.proxies)),
        *((Verbosity, name, compare) for name, compare in _verbosity_order().items()),
        *((strategy, name, _memoized(name)) for name in ("is_empty", "has_reusable_values", "is_cacheable")),
        (ThreadLocal, "__getattr__", _thread_local_reads(ThreadLocal.__getattr__)),
        (hypothesis_data, "choices_size", _choices_size(hypothesis_data.choices_size)),
        (hypothesis_lazy, "unwrap_strategies", _unwrap_once(hypothesis_lazy.unwrap_strategies)),
    ]


#: ``(owner, attribute, hypothesis's value, ours)`` once installed.
_INSTALLED: list[tuple[Any, str, Any, Any]] = []


def install() -> bool:
    """Make hypothesis's per-example bookkeeping cheaper (this module's docstring); whether
    it did (only for the hypothesis version the changes were written for)."""
    if hypothesis.__version__ != WRITTEN_FOR:
        return False
    if not _INSTALLED:
        for owner, name, ours in _replacements():
            _INSTALLED.append((owner, name, vars(owner)[name], ours))
            setattr(owner, name, ours)
    return True


@contextlib.contextmanager
def unpatched() -> Iterator[None]:
    """Hypothesis's own code back in place for the body (to compare it with this module's)."""
    for owner, name, theirs, _ in _INSTALLED:
        setattr(owner, name, theirs)
    try:
        yield
    finally:
        for owner, name, _, ours in _INSTALLED:
            setattr(owner, name, ours)
