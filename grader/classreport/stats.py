"""What the class report says about a :class:`~grader.classreport.data.Batch`: score
distributions (per exercise, per module, the total), the statuses and the most frequent
matched mistakes and failing properties per exercise, the limits hit, the grading time.

Every list has a fixed order (counts descending, then text; ids ascending), so the same batch
always gives the same summary.
"""

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from grader import rubric
from grader.classreport.data import Batch, Submission
from grader.outcomes import CRASHED, ERROR, MISSING, NOT_IMPLEMENTED, OUT_OF_MEMORY, SEVERITY, TIMEOUT

#: Exercise statuses that mean the student's code hit a limit or raised (grader/outcomes.py).
LIMITS = (TIMEOUT, CRASHED, OUT_OF_MEMORY, ERROR)
#: Exercise statuses of a submission that did not try the exercise: its properties are not counted as failing.
NOT_TRIED = (NOT_IMPLEMENTED, MISSING)
#: How many submissions the "slowest" table lists.
SLOWEST = 10


@dataclass(frozen=True)
class Distribution:
    """The scores of one part (an exercise, a module, the total) over the class."""

    label: str
    maximum: float  # the points the part is worth
    values: tuple[float, ...]  # one per submission, in id order

    @property
    def count(self) -> int:
        """How many submissions."""
        return len(self.values)

    @property
    def mean(self) -> float:
        """The mean score (0 for none)."""
        return round(statistics.fmean(self.values), 2) if self.values else 0.0

    @property
    def median(self) -> float:
        """The median score (0 for none)."""
        return round(statistics.median(self.values), 2) if self.values else 0.0

    @property
    def full(self) -> int:
        """How many submissions have full marks."""
        return sum(v >= self.maximum - 1e-9 for v in self.values) if self.maximum > 0 else 0

    @property
    def zero(self) -> int:
        """How many submissions score 0."""
        return sum(v <= 1e-9 for v in self.values)


@dataclass(frozen=True)
class ExerciseSummary:
    """One exercise over the class."""

    exercise: rubric.Exercise
    scores: Distribution
    statuses: tuple[tuple[str, int], ...]  # (status, submissions), most telling first (SEVERITY)
    mistakes: tuple[tuple[str, int], ...]  # (matched catalogued mistake, submissions), most frequent first
    failed: tuple[tuple[str, int], ...]  # (failing property, submissions that tried), most frequent first


@dataclass(frozen=True)
class Limit:
    """The exercises of one submission that ended in one limit (timeout, crash, memory) or an error."""

    ident: str
    status: str
    exercises: tuple[str, ...]  # in rubric order


@dataclass(frozen=True)
class Timing:
    """The grading time of the class (``execution_time`` of each results.json)."""

    recorded: tuple[tuple[str, float], ...]  # (id, seconds), slowest first
    not_recorded: tuple[str, ...]  # ids whose results lack it (written before it was recorded)

    @property
    def total(self) -> float:
        """Seconds, all recorded submissions together."""
        return round(sum(s for _, s in self.recorded), 2)

    @property
    def mean(self) -> float:
        """Mean seconds per recorded submission (0 for none)."""
        return round(statistics.fmean(s for _, s in self.recorded), 2) if self.recorded else 0.0

    @property
    def median(self) -> float:
        """Median seconds per recorded submission (0 for none)."""
        return round(statistics.median(s for _, s in self.recorded), 2) if self.recorded else 0.0

    @property
    def slowest(self) -> tuple[tuple[str, float], ...]:
        """The :data:`SLOWEST` slowest submissions."""
        return self.recorded[:SLOWEST]


@dataclass(frozen=True)
class Summary:
    """Everything the class report shows, computed once."""

    total: Distribution
    modules: tuple[Distribution, ...]  # in rubric.MODULES order
    exercises: tuple[ExerciseSummary, ...]  # in rubric order
    limits: tuple[Limit, ...]  # by id, then status (the order of LIMITS)
    timing: Timing

    @property
    def limit_counts(self) -> tuple[tuple[str, int], ...]:
        """``(status, submissions that hit it at least once)`` for each status of :data:`LIMITS` seen."""
        by_status = {status: {lim.ident for lim in self.limits if lim.status == status} for status in LIMITS}
        return tuple((status, len(ids)) for status, ids in by_status.items() if ids)


def frequent(items: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """``(item, count)`` for each distinct non-empty item, most frequent first, ties by text."""
    counts = Counter(item for item in items if item)
    return tuple(sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])))


def exercise_summary(exercise: rubric.Exercise, submissions: Sequence[Submission]) -> ExerciseSummary:
    """The scores, statuses, matched mistakes and failing properties of ``exercise``.

    Counts are of submissions: a property that failed in several tests of one submission, or a
    mistake several hints of it named, counts once.  A submission that named two mistakes on
    one exercise counts as that pair (``behaviour_of`` joins them with ``"; "``; a catalogued
    mistake may itself hold ``"; "``).  The failing properties of a submission that did not
    try the exercise (:data:`NOT_TRIED`: the stub's TODO, no module file) are not counted."""
    outcomes = [s.exercises[exercise.id] for s in submissions]
    statuses = Counter(o.status for o in outcomes)
    order = {status: i for i, status in enumerate(SEVERITY)}
    return ExerciseSummary(
        exercise=exercise,
        scores=Distribution(exercise.id, float(exercise.points), tuple(o.score for o in outcomes)),
        statuses=tuple(sorted(statuses.items(), key=lambda pair: (order.get(pair[0], -1), pair[0]))),
        mistakes=frequent(o.mistake for o in outcomes),
        failed=frequent(title for o in outcomes if o.status not in NOT_TRIED for title in set(o.failed)),
    )


def timing(submissions: Sequence[Submission]) -> Timing:
    """The grading time of ``submissions``: the recorded ones slowest first (ties by id)."""
    recorded = [(s.ident, s.execution_time) for s in submissions if s.execution_time is not None]
    return Timing(
        recorded=tuple(sorted(recorded, key=lambda pair: (-pair[1], pair[0]))),
        not_recorded=tuple(sorted(s.ident for s in submissions if s.execution_time is None)),
    )


def summarize(batch: Batch) -> Summary:
    """The :class:`Summary` of ``batch``."""
    subs = sorted(batch.submissions, key=lambda s: s.ident)
    maximum = max((s.max_score for s in subs), default=0.0)
    modules = []
    for module in rubric.MODULES:
        points = float(sum(ex.points for ex in rubric.exercises_of(module)))
        modules.append(Distribution(module, points, tuple(s.modules[module][0] for s in subs)))
    limits = []
    for sub in subs:
        for status in LIMITS:
            hit = tuple(ex.id for ex in rubric.EXERCISES if sub.exercises[ex.id].status == status)
            limits += [Limit(sub.ident, status, hit)] if hit else []
    return Summary(
        total=Distribution("total", maximum, tuple(s.score for s in subs)),
        modules=tuple(modules),
        exercises=tuple(exercise_summary(ex, subs) for ex in rubric.EXERCISES),
        limits=tuple(limits),
        timing=timing(subs),
    )
