"""Scores from per-test records, and the Gradescope ``results.json`` schema.

The scoring rule (README, "How a score is computed"): a test is either a **value** test,
which compares the function's values with an independent oracle, or a **property** test
(``kind="property"``), whose property a constant output could satisfy (masked keys get
weight 0, causality, inputs unchanged, dtype kept, raises ``ValueError``).  An exercise
scores ``points * (V + s * P) / (V_all + P_all)``: ``V`` the weight of value tests passed,
``P`` the weight of property tests passed, and ``s = V / V_all`` the passed share of
value weight.  Zeros, ones or noise pass no value test, so ``s = 0`` and they score 0.
"""

from collections.abc import Iterable, Sequence
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

    @property
    def max_score(self) -> float:
        """Points the exercise is worth."""
        return self.exercise.points

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


def contributions(exercise: rubric.Exercise, records: Iterable[TestRecord]) -> list[tuple[TestRecord, float]]:
    """Points each graded record earns (see the module doc); hidden tests not run count
    neither way.  The values add up to the exercise's score."""
    graded = [r for r in records if r.status != HIDDEN]
    total = sum(r.weight for r in graded)
    share = value_share(graded)
    out = []
    for r in graded:
        earned = r.weight if r.status == PASSED else 0.0
        if r.kind == PROPERTY:
            earned *= share
        out.append((r, exercise.points * earned / total if total else 0.0))
    return out


def score_exercise(
    exercise: rubric.Exercise, records: list[TestRecord], note: str = "", status: str | None = None
) -> ExerciseResult:
    """Score ``exercise`` from its test ``records`` (see the module doc)."""
    graded = [r for r in records if r.status != HIDDEN]
    score = round(sum(points for _, points in contributions(exercise, records)), 2)
    if status is None:
        status = worst([r.redacted().status for r in graded]) if graded else MISSING
    return ExerciseResult(exercise, score, status, records, note)


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
        test for its public tests and, when it has hidden tests, one ``after_published``
        test for them (name and passed/failed only).  The parts add up to the score."""
        tests = []
        for r in self.results:
            earned = contributions(r.exercise, r.records)
            public = [(rec, pts) for rec, pts in earned if not rec.hidden]
            hidden = [rec.redacted() for rec in r.records if rec.hidden and rec.status != HIDDEN]  # those that ran
            # The hidden part is rounded first and the public part is the rest of the (rounded)
            # score, so the two add up and a public part whose tests all failed shows 0.
            hidden_pts = round(sum(pts for rec, pts in earned if rec.hidden), 2)
            hidden_max = round(_share_of_points(r, hidden), 2)
            status = worst([rec.status for rec in r.records if not rec.hidden]) if public else r.status
            output = f"status: {status}"
            feedback = r.feedback()
            if feedback:
                output += "\n\n" + "\n\n".join(feedback)
            public_all_passed = all(rec.status == PASSED for rec, _ in public) if public else r.score >= r.max_score
            tests.append(
                {
                    "name": f"{r.exercise.id}: {r.exercise.title}",
                    "score": round(r.score - hidden_pts, 2),
                    "max_score": round(r.max_score - hidden_max, 2),
                    "status": "passed" if public_all_passed else "failed",  # never tells of a hidden test
                    "output": output,
                    "visibility": "visible",
                    "tags": [r.exercise.module, r.exercise.id],
                    "extra_data": {"outcome": status, "tests": [asdict(rec) for rec in r.records if not rec.hidden]},
                }
            )
            if hidden:
                lines = [f"{rec.status}: {rec.property}" for rec in hidden]  # redacted: passed or failed
                tests.append(
                    {
                        "name": f"{r.exercise.id}: {r.exercise.title} (hidden tests)",
                        "score": round(hidden_pts, 2),
                        "max_score": round(hidden_max, 2),
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


def _share_of_points(result: ExerciseResult, records: Sequence[TestRecord]) -> float:
    """The points the graded ``records`` are worth when every test passes."""
    total = sum(r.weight for r in result.records if r.status != HIDDEN)
    return result.max_score * sum(r.weight for r in records) / total if total else 0.0
