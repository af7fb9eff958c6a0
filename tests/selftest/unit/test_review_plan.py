"""Who reviews whom (grader/review/plan.py): exact load, no self, no pair twice, no reciprocal
pair when ``n >= 2k + 1`` (the fewest possible below), conflicts kept apart (or a
:class:`PlanError` exactly when that is impossible), the same plan for the same inputs, failing
authors with passing reviewers, staff on top of the students, aliases and the CSV."""

import csv
import io
import itertools
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.review.plan import (
    CSV_COLUMNS,
    DIFFERENT_APPROACH,
    PASSING_FOR_FAILING,
    STAFF,
    STUDENT,
    Author,
    PlanError,
    alias,
    make_plan,
    to_csv,
)

APPROACHES = ("", "einsum", "matmul", "loop")


def sid(i):
    """The id of student ``i``: not in the order of ``i`` once sorted, so sorting matters."""
    return f"stu{(i * 37) % 101:03d}"


@st.composite
def classes(draw, min_n=3, max_n=60, approaches=("",)):
    """``(authors, k)``: 3..60 students, k in 1..4, n >= k + 1, random pass/fail and approaches."""
    k = draw(st.integers(1, 4))
    n = draw(st.integers(max(min_n, k + 1), max(max_n, k + 1)))
    passed = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    labels = draw(st.lists(st.sampled_from(approaches), min_size=n, max_size=n))
    return [Author(sid(i), labels[i], passed[i]) for i in range(n)], k


def student_pairs(plan):
    """The students' reviews as ``(reviewer, author)``."""
    return [(a.reviewer, a.author) for a in plan.assignments if a.role == STUDENT]


def check_rules(plan, authors, k, conflicts=()):
    """The hard rules: exact load both ways, no self, no pair twice, no reciprocal pair when
    ``n >= 2k + 1`` and exactly the unavoidable ``n (2k - n + 1) / 2`` below, no conflict pair."""
    ids = {a.id for a in authors}
    n = len(ids)
    pairs = student_pairs(plan)
    assert len(pairs) == n * k
    assert len(set(pairs)) == len(pairs), "a pair appears twice"
    assert all(r != a for r, a in pairs), "a student reviews themselves"
    assert Counter(r for r, _ in pairs) == dict.fromkeys(ids, k)
    assert Counter(a for _, a in pairs) == dict.fromkeys(ids, k)
    present = set(pairs)
    reciprocal = sum(1 for r, a in pairs if r < a and (a, r) in present)
    if n >= 2 * k + 1:
        assert reciprocal == 0
    elif not conflicts:
        assert reciprocal == n * (2 * k - n + 1) // 2  # n * k reviews over n (n - 1) / 2 pairs
        assert any("reciprocal" in note and str(reciprocal) in note for note in plan.notes)
    blocked = {frozenset(c) for c in conflicts}
    assert not [p for p in pairs if frozenset(p) in blocked], "a conflict pair reviews"


def feasible(n, k, blocked):
    """Brute force: do reviews exist that meet the hard rules?  With ``n >= 2k + 1`` that is a
    set of pairs outside ``blocked`` with every student in ``2k`` of them (walking its Euler
    circuits turns it into k reviews each way); below, each student picks k authors."""
    allowed = [[v for v in range(n) if v != u and frozenset((u, v)) not in blocked] for u in range(n)]
    if n >= 2 * k + 1:
        degree = [0] * n

        def pairs_from(u):
            if u == n:
                return True
            later = [v for v in allowed[u] if v > u and degree[v] < 2 * k]
            for chosen in itertools.combinations(later, 2 * k - degree[u]):
                for v in chosen:
                    degree[v] += 1
                if pairs_from(u + 1):
                    return True
                for v in chosen:
                    degree[v] -= 1
            return False

        return pairs_from(0)
    reviewers = [0] * n

    def reviews_from(u):
        if u == n:
            return True
        for chosen in itertools.combinations([v for v in allowed[u] if reviewers[v] < k], k):
            for v in chosen:
                reviewers[v] += 1
            if all(k - reviewers[v] <= n - 1 - u for v in range(n)) and reviews_from(u + 1):
                return True
            for v in chosen:
                reviewers[v] -= 1
        return False

    return reviews_from(0)


@settings(max_examples=120, deadline=None)
@given(classes(approaches=APPROACHES), st.integers(0, 10**6))
def test_every_student_reviews_k_and_gets_k_reviewers(case, seed):
    authors, k = case
    plan = make_plan(authors, k, seed, unit="attention.sdpa")
    check_rules(plan, authors, k)
    assert (plan.unit, plan.k, plan.seed) == ("attention.sdpa", k, str(seed))
    for author in authors:  # the helpers read the same assignments
        assert sorted(plan.reviewers_of(author.id)) == sorted(r for r, a in student_pairs(plan) if a == author.id)
        assert len(plan.tasks_of(author.id)) == k


@settings(max_examples=150, deadline=None)
@given(classes(max_n=9), st.sets(st.tuples(st.integers(0, 8), st.integers(0, 8)), max_size=12), st.integers(0, 99))
def test_conflicts_raise_exactly_when_no_plan_exists(case, raw, seed):
    """Small classes against a brute-force search: a plan whenever one exists, else an error
    that names one of the pairs."""
    authors, k = case
    n = len(authors)
    conflicts = sorted({tuple(sorted((sid(a), sid(b)))) for a, b in raw if a != b and a < n and b < n})
    index = {sid(i): i for i in range(n)}
    possible = feasible(n, k, {frozenset((index[a], index[b])) for a, b in conflicts})
    if possible:
        check_rules(make_plan(authors, k, seed, conflicts=conflicts), authors, k, conflicts)
    else:
        with pytest.raises(PlanError) as error:
            make_plan(authors, k, seed, conflicts=conflicts)
        assert any(f"({a}, {b})" in str(error.value) for a, b in conflicts), str(error.value)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_large_class_with_few_conflicts_always_gets_a_plan(data):
    """n >= 8k with at most n / 4 conflict pairs: every student has over n / 2 possible
    partners, so 2k of them exist for all at once (Katerinis 1985) and a plan must be found."""
    k = data.draw(st.integers(1, 4))
    n = data.draw(st.integers(8 * k, 60))
    ids = [sid(i) for i in range(n)]
    conflicts = data.draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=n // 4))
    authors = [Author(i, passed=data.draw(st.booleans())) for i in ids]
    plan = make_plan(authors, k, "round-1", conflicts=conflicts)
    check_rules(plan, authors, k, [c for c in conflicts if c[0] != c[1]])


@settings(max_examples=40, deadline=None)
@given(classes(max_n=40), st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=40), st.randoms())
def test_any_conflicts_give_a_plan_that_keeps_them_or_an_error_naming_them(case, raw, rnd):
    authors, k = case
    n = len(authors)
    conflicts = [(sid(a), sid(b)) for a, b in raw if a != b and a < n and b < n]
    try:
        plan = make_plan(authors, k, rnd.randrange(100), conflicts=conflicts)
    except PlanError as error:
        assert any(f"({min(c)}, {max(c)})" in str(error) for c in conflicts), str(error)
    else:
        check_rules(plan, authors, k, conflicts)


@settings(max_examples=40, deadline=None)
@given(classes(approaches=APPROACHES), st.randoms(), st.sampled_from(["7", 7, "round 2"]))
def test_the_same_inputs_give_the_same_plan_in_any_order(case, rnd, seed):
    authors, k = case
    ids = [a.id for a in authors]
    conflicts = [tuple(rnd.sample(ids, 2)) for _ in range(2)]
    staff = ["ta.ann", "ta.bob", "prof"]
    try:
        plan = make_plan(authors, k, seed, "mha", conflicts, staff, 2)
    except PlanError:
        return  # the error for these conflicts is tested above
    shuffled = authors[:]
    rnd.shuffle(shuffled)
    flipped = [(b, a) for a, b in reversed(conflicts)]
    assert make_plan(shuffled, k, seed, "mha", flipped, staff[::-1], 2) == plan
    assert make_plan(authors, k, seed, "mha", conflicts, staff, 2) == plan


def test_other_seeds_and_units_give_other_plans():
    authors = [Author(sid(i)) for i in range(12)]
    plans = {tuple(student_pairs(make_plan(authors, 2, seed))) for seed in range(5)}
    assert len(plans) >= 4
    assert student_pairs(make_plan(authors, 2, 1, unit="a")) != student_pairs(make_plan(authors, 2, 1, unit="b"))


@settings(max_examples=120, deadline=None)
@given(classes(approaches=APPROACHES), st.integers(0, 1000))
def test_failing_authors_get_a_passing_reviewer_as_far_as_the_class_allows(case, seed):
    """Each passing student can review k failing authors, so min(failing, k * passing) of them
    can get a passing reviewer, and do; the others are named in a note."""
    authors, k = case
    plan = make_plan(authors, k, seed)
    passed = {a.id: a.passed for a in authors}
    failing = [a.id for a in authors if not a.passed]
    n_passing = len(authors) - len(failing)
    covered = [a for a in failing if any(passed[r] for r in plan.reviewers_of(a))]
    if n_passing:
        assert len(covered) >= min(len(failing), k * n_passing)
    uncovered = set(failing) - set(covered)
    if uncovered:
        note = next(note for note in plan.notes if "no passing reviewer" in note)
        if n_passing:
            assert all(a in note for a in uncovered)
    for a in plan.assignments:
        assert (a.reason == PASSING_FOR_FAILING) == (passed[a.reviewer] and not passed[a.author])


@settings(max_examples=60, deadline=None)
@given(classes(max_n=30), st.integers(0, 4), st.integers(1, 3), st.integers(0, 99))
def test_staff_come_on_top_of_the_students(case, load, n_staff, seed):
    authors, k = case
    n = len(authors)
    staff = [f"ta{j}" for j in range(n_staff)]
    alone = make_plan(authors, k, seed)
    plan = make_plan(authors, k, seed, staff=staff, staff_load=load)
    assert student_pairs(plan) == student_pairs(alone)  # staff take no student slot
    check_rules(plan, authors, k)
    staff_tasks = [(a.reviewer, a.author) for a in plan.assignments if a.role == STAFF]
    assert len(set(staff_tasks)) == len(staff_tasks)
    for member in staff:
        assert len(plan.tasks_of(member)) == min(load, n)
    failing = {a.id for a in authors if not a.passed}
    per_author = Counter(author for _, author in staff_tasks)
    if len(staff_tasks) <= len(failing):  # failing authors first
        assert set(per_author) <= failing
    if len(staff_tasks) <= n:  # round robin: nobody gets a second staff reviewer before all have one
        assert max(per_author.values(), default=0) <= 1
    else:
        assert set(per_author) == {a.id for a in authors}


def test_staff_avoid_their_conflicts():
    authors = [Author(sid(i), passed=i > 1) for i in range(6)]
    plan = make_plan(authors, 2, 0, conflicts=[("ta", sid(0))], staff=["ta"], staff_load=5)
    assert sid(0) not in plan.tasks_of("ta")
    assert plan.tasks_of("ta") == sorted({sid(i) for i in range(1, 6)})


def test_too_few_students_for_k():
    with pytest.raises(PlanError) as error:
        make_plan([Author("a"), Author("b"), Author("c")], 3, 0)
    assert str(error.value) == (
        "3 students cannot each get 3 reviewers: a review round needs at least k + 1 = 4 students"
    )
    with pytest.raises(PlanError, match="at least 1"):
        make_plan([Author("a"), Author("b")], 0, 0)


def test_bad_ids_are_refused():
    with pytest.raises(PlanError, match="more than once: a"):
        make_plan([Author("a"), Author("a"), Author("b")], 1, 0)
    with pytest.raises(PlanError, match="both a student and staff"):
        make_plan([Author("a"), Author("b"), Author("c")], 1, 0, staff=["b"])


def test_a_conflict_in_a_class_of_k_plus_1_is_impossible_and_named():
    authors = [Author(x) for x in "abcd"]
    with pytest.raises(PlanError, match=r"\(a, c\)"):
        make_plan(authors, 3, 0, conflicts=[("c", "a")])


def test_a_student_with_too_many_conflicts_is_named():
    authors = [Author(sid(i)) for i in range(9)]
    conflicts = [(sid(0), sid(i)) for i in (1, 2, 3)]
    with pytest.raises(PlanError) as error:  # 5 others left, 2k = 6 needed
        make_plan(authors, 3, 0, conflicts=conflicts)
    assert sid(0) in str(error.value) and all(f"{min(c)}, {max(c)}" in str(error.value) for c in conflicts)


def test_reviewers_of_another_approach_when_the_groups_allow_it():
    """Two approaches of 10 students each, k = 2: every review can cross over."""
    for seed in range(3):
        authors = [Author(sid(i), "einsum" if i % 2 else "matmul") for i in range(20)]
        plan = make_plan(authors, 2, seed)
        approach = {a.id: a.approach for a in authors}
        assert all(approach[a.reviewer] != approach[a.author] for a in plan.assignments)
        assert {a.reason for a in plan.assignments} == {DIFFERENT_APPROACH}
        assert plan.notes == []


def test_a_majority_approach_is_noted_with_its_bound():
    """7 of 9 students use einsum: 2 * (2 * 7 - 9) = 10 same-approach reviews are unavoidable."""
    authors = [Author(sid(i), "einsum" if i < 7 else "loop") for i in range(9)]
    plan = make_plan(authors, 2, 3)
    approach = {a.id: a.approach for a in authors}
    same = sum(approach[a.reviewer] == approach[a.author] for a in plan.assignments)
    assert same == 10
    assert any("10 of 18 reviews" in note for note in plan.notes)


def test_notes_say_when_nobody_passed():
    plan = make_plan([Author(sid(i), passed=False) for i in range(5)], 2, 0)
    assert any("no student passed" in note for note in plan.notes)


def test_alias_is_a_keyed_hash_per_round():
    a = alias(b"secret", "stu001", "round-1")
    assert a == alias(b"secret", "stu001", "round-1")
    assert len(a) == 10 and all(c in "0123456789abcdef" for c in a)
    assert a != alias(b"secret", "stu001", "round-2")
    assert a != alias(b"other key", "stu001", "round-1")
    assert a != alias(b"secret", "stu002", "round-1")
    many = {alias(b"secret", f"s{i}", "round-1") for i in range(1000)}
    assert len(many) == 1000


def test_csv_has_one_row_per_assignment_with_the_alias():
    authors = [Author(sid(i), passed=i != 0) for i in range(5)]
    plan = make_plan(authors, 2, 0, unit="attention.sdpa", staff=["ta"], staff_load=1)
    aliases = {a.id: alias(b"k", a.id, "r1") for a in authors}
    rows = list(csv.reader(io.StringIO(to_csv(plan, aliases))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + len(plan.assignments) == 1 + 5 * 2 + 1
    for row, a in zip(rows[1:], plan.assignments):
        assert row == [a.reviewer, a.author, aliases[a.author], "attention.sdpa", a.role, a.reason]
    assert rows[-1][:2] == ["ta", sid(0)] and rows[-1][4] == STAFF  # the failing author first
    with pytest.raises(PlanError, match="no alias"):
        to_csv(plan, {})


def test_the_plan_does_not_touch_the_global_random_generator():
    authors = [Author(sid(i), APPROACHES[i % 4], i % 3 > 0) for i in range(15)]
    random.seed(1)
    state = random.getstate()
    first = make_plan(authors, 3, "s", conflicts=[(sid(0), sid(1))])
    assert random.getstate() == state
    random.seed(2)
    assert make_plan(authors, 3, "s", conflicts=[(sid(0), sid(1))]) == first
