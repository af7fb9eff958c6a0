"""Scores from per-test records, and the Gradescope ``results.json`` schema."""

from dataclasses import asdict, dataclass, field

from grader import rubric
from grader.errors import HIDDEN, MISSING, PASSED, worst


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


@dataclass
class ExerciseResult:
    """The score of one exercise and the feedback behind it."""

    exercise: rubric.Exercise
    score: float
    status: str
    records: list = field(default_factory=list)
    note: str = ""

    @property
    def max_score(self):
        """Points the exercise is worth."""
        return self.exercise.points

    def feedback(self):
        """Distinct failure messages, most useful first."""
        seen, out = set(), []
        for rec in self.records:
            if rec.status in (PASSED, HIDDEN) or not rec.message or rec.message in seen:
                continue
            seen.add(rec.message)
            out.append(rec.message)
        if self.note and self.note not in seen:
            out.insert(0, self.note)
        return out


def score_exercise(exercise, records, note="", status=None):
    """Score ``exercise`` from its test ``records``: points times the passed share of
    weights.  Hidden tests not run (a student's local check) count neither way."""
    graded = [r for r in records if r.status != HIDDEN]
    total = sum(r.weight for r in graded)
    passed = sum(r.weight for r in graded if r.status == PASSED)
    score = round(exercise.points * passed / total, 2) if total else 0.0
    if status is None:
        status = worst([r.status for r in graded]) if graded else MISSING
    return ExerciseResult(exercise, score, status, records, note)


@dataclass
class Report:
    """Every selected exercise of one submission."""

    submission: str
    results: list

    @property
    def score(self):
        """Total points earned."""
        return round(sum(r.score for r in self.results), 2)

    @property
    def max_score(self):
        """Total points possible for the selected exercises."""
        return round(sum(r.max_score for r in self.results), 2)

    def module_scores(self):
        """``{module: (score, max_score)}`` in course order."""
        out = {}
        for r in self.results:
            got, possible = out.get(r.exercise.module, (0.0, 0.0))
            out[r.exercise.module] = (round(got + r.score, 2), round(possible + r.max_score, 2))
        return out

    def to_gradescope(self):
        """The report in Gradescope's ``results.json`` schema (one test per exercise)."""
        tests = []
        for r in self.results:
            output = f"status: {r.status}"
            feedback = r.feedback()
            if feedback:
                output += "\n\n" + "\n\n".join(feedback)
            tests.append({
                "name": f"{r.exercise.id}: {r.exercise.title}",
                "score": r.score,
                "max_score": r.max_score,
                "status": "passed" if r.score >= r.max_score else "failed",
                "output": output,
                "tags": [r.exercise.module, r.exercise.id],
                "extra_data": {"outcome": r.status,
                               "tests": [asdict(rec) for rec in r.records]},
            })
        return {"score": self.score, "max_score": self.max_score, "tests": tests,
                "extra_data": {"submission": self.submission, "modules": self.module_scores()}}
