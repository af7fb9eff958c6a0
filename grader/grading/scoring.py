"""Scores from per-test records, and the Gradescope ``results.json`` schema.

The scoring rule (README, "How a score is computed"): a test is either a **value** test,
which compares the function's values with an independent oracle, or a **property** test
(``kind="property"``), whose property a constant output could satisfy (masked keys get
weight 0, causality, inputs unchanged, dtype kept, raises ``ValueError``).  A set of tests
scores ``points * (V + s * P) / (V_all + P_all)``: ``V`` the weight of value tests passed,
``P`` the weight of property tests passed, and ``s = V / V_all`` the passed share of
value weight.  Zeros, ones or noise pass no value test, so ``s = 0`` and they score 0.

An exercise scores ``min(visible, overall)``: ``visible`` is the rule over its public tests
alone, exactly what a student's local check shows, and ``overall`` the rule over every test
that ran, hidden ones included.  So the local score is a promise: hidden tests can take
points away, never add any, and a submission whose tests all pass has full marks either way.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from grader import rubric
from grader.outcomes import FAILED, HIDDEN, MISSING, PASSED, PROPERTY, VALUE, worst

#: How a hidden test appears to the student: its name and passed/failed, nothing else.
HIDDEN_VISIBILITY = "after_published"


@dataclass
class TestRecord:
    """One graded test of one exercise, as the pytest plugin recorded it."""

    nodeid: str
    exercise: str
    weight: float
    status: str
    message: str = ""
    property: str = ""
    hidden: bool = False
    submission: str = ""
    kind: str = VALUE

    def redacted(self) -> "TestRecord":
        """The record as a student may see it: a hidden test keeps its name and
        passed/failed (or hidden, when not run), never its message or inputs."""
        if not self.hidden:
            return self
        status = self.status if self.status in (PASSED, HIDDEN) else FAILED
        return TestRecord(
            self.nodeid, self.exercise, self.weight, status, "", self.property, True, self.submission, self.kind
        )


@dataclass
class ExerciseResult:
    """The score of one exercise and the feedback behind it."""

    exercise: rubric.Exercise
    score: float
    status: str
    records: list[TestRecord] = field(default_factory=list)
    note: str = ""
    #: The score of the public tests alone, what a local check shows (``None``: ``score``).
    public: float | None = None

    @property
    def max_score(self) -> float:
        """Points the exercise is worth."""
        return self.exercise.points

    @property
    def public_score(self) -> float:
        """The public tests' score: the visible part, equal to a local check's score."""
        return self.score if self.public is None else self.public

    @property
    def hidden_score(self) -> float:
        """What the hidden tests took away from the public tests' score: 0 or less."""
        return round(self.score - self.public_score, 2)

    def feedback(self) -> list[str]:
        """Distinct failure messages of the public tests, most useful first (a hidden
        test's message is never shown)."""
        seen: set[str] = set()
        out: list[str] = []
        for rec in self.records:
            if rec.hidden or rec.status in (PASSED, HIDDEN) or not rec.message or rec.message in seen:
                continue
            seen.add(rec.message)
            out.append(rec.message)
        if self.note and self.note not in seen:
            out.insert(0, self.note)
        return out


def value_share(records: Iterable[TestRecord]) -> float:
    """The passed share of value-test weight among ``records`` (0 when there is none)."""
    values = [r for r in records if r.kind != PROPERTY]
    total = sum(r.weight for r in values)
    return sum(r.weight for r in values if r.status == PASSED) / total if total else 0.0


def rule_score(points: float, records: Iterable[TestRecord]) -> float:
    """``points * (V + s * P) / (V_all + P_all)`` over the ``records`` that ran (hidden tests
    not run count neither way), unrounded; 0 when none ran."""
    graded = [r for r in records if r.status != HIDDEN]
    total = sum(r.weight for r in graded)
    if not total:
        return 0.0
    share = value_share(graded)
    earned = sum(r.weight * (share if r.kind == PROPERTY else 1.0) for r in graded if r.status == PASSED)
    return points * earned / total


def score_exercise(
    exercise: rubric.Exercise, records: list[TestRecord], note: str = "", status: str | None = None
) -> ExerciseResult:
    """Score ``exercise`` from its test ``records``: ``min(public, overall)``, each the rule
    rounded to cents (see the module doc)."""
    graded = [r for r in records if r.status != HIDDEN]
    public = round(rule_score(exercise.points, [r for r in graded if not r.hidden]), 2)
    overall = round(rule_score(exercise.points, graded), 2)
    if status is None:
        status = worst([r.redacted().status for r in graded]) if graded else MISSING
    return ExerciseResult(exercise, min(public, overall), status, records, note, public)


@dataclass
class Report:
    """Every selected exercise of one submission."""

    submission: str
    results: list[ExerciseResult]
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Total points earned."""
        return round(sum(r.score for r in self.results), 2)

    @property
    def max_score(self) -> float:
        """Total points possible for the selected exercises."""
        return round(sum(r.max_score for r in self.results), 2)

    def module_scores(self) -> dict[str, tuple[float, float]]:
        """``{module: (score, max_score)}`` in course order."""
        out: dict[str, tuple[float, float]] = {}
        for r in self.results:
            got, possible = out.get(r.exercise.module, (0.0, 0.0))
            out[r.exercise.module] = (round(got + r.score, 2), round(possible + r.max_score, 2))
        return out

    def to_gradescope(self) -> dict[str, Any]:
        """The report in Gradescope's ``results.json`` schema: per exercise one visible
        test for its public tests, worth the exercise's points and scored as a local check
        scores them, and, when hidden tests ran, one ``after_published`` test for them (name
        and passed/failed only) worth 0, scored with the points they took away (0 or less).
        The parts add up to the score; each test's maximum is the same for every submission."""
        tests = []
        for r in self.results:
            public = [rec for rec in r.records if not rec.hidden]
            hidden = [rec.redacted() for rec in r.records if rec.hidden and rec.status != HIDDEN]  # those that ran
            status = worst([rec.status for rec in public]) if public else r.status
            output = f"status: {status}"
            feedback = r.feedback()
            if feedback:
                output += "\n\n" + "\n\n".join(feedback)
            public_all_passed = all(rec.status == PASSED for rec in public) if public else r.score >= r.max_score
            tests.append(
                {
                    "name": f"{r.exercise.id}: {r.exercise.title}",
                    "score": r.public_score,
                    "max_score": r.max_score,
                    "status": "passed" if public_all_passed else "failed",  # never tells of a hidden test
                    "output": output,
                    "visibility": "visible",
                    "tags": [r.exercise.module, r.exercise.id],
                    "extra_data": {"outcome": status, "tests": [asdict(rec) for rec in public]},
                }
            )
            if hidden:
                lines = [f"{rec.status}: {rec.property}" for rec in hidden]  # redacted: passed or failed
                tests.append(
                    {
                        "name": f"{r.exercise.id}: {r.exercise.title} (hidden tests)",
                        "score": r.hidden_score,
                        "max_score": 0,
                        "status": "passed" if all(rec.status == PASSED for rec in hidden) else "failed",
                        "output": "\n".join(lines),
                        "visibility": HIDDEN_VISIBILITY,
                        "tags": [r.exercise.module, r.exercise.id, "hidden"],
                        "extra_data": {
                            "outcome": PASSED if all(rec.status == PASSED for rec in hidden) else FAILED,
                            "tests": [asdict(rec) for rec in hidden],
                        },
                    }
                )
        extra: dict[str, Any] = {"submission": self.submission, "modules": self.module_scores()}
        if self.notes:
            extra["notes"] = list(self.notes)
        return {"score": self.score, "max_score": self.max_score, "tests": tests, "extra_data": extra}
