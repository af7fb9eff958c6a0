"""Who reviews whom in a review round (``python -m grader review plan``): the plan, aliases, its CSV.

The rules come from the tools teachers already use (``../shared/design``, anchors §1.4-1.6):

* **Exact load** (RepoBee; Caesar issue #32 had 16+ reviewers on some and 4 on others): every
  author gets exactly ``k`` student reviewers and every student reviews exactly ``k`` authors;
  nobody reviews themselves and no pair appears twice.  A round needs at least ``k + 1``
  students (:class:`PlanError` otherwise).
* **No reciprocal pair** (Canvas): A reviews B and B reviews A never happens when there are at
  least ``2k + 1`` students.  With ``k + 1 <= n <= 2k`` some are unavoidable: ``n * k`` reviews
  over ``n (n - 1) / 2`` pairs force at least ``n * k - n (n - 1) / 2`` of them (plus one per
  conflict pair); the plan keeps that minimum and says so in :attr:`Plan.notes`.
* **Conflict pairs** (co-authors, ``conflicts.csv``, earlier rounds) are unordered and hard:
  neither student reviews the other.  A plan that cannot exist raises :class:`PlanError`
  naming the pairs that block it.
* **Soft goals**, in this order: every failing author gets at least one reviewer who passed the
  unit (when anybody passed), then reviewers whose approach differs from the author's
  (Juxtapeer: contrasting solutions give better reviews).  Notes say which were not met.
* **Staff on top** (Caesar issue #121): staff reviewers take no student slot; each gets
  ``staff_load`` authors, failing authors first, round robin.

How: the students are sorted by id, shuffled with ``random.Random(f"{seed}:{unit}")`` (never
the global generator) and set in a circle, the passing students spread evenly so that every
failing author has one within the ``k`` places before it; student ``i`` reviews the ``k``
students after it (RepoBee's rotation).  Without conflicts that start already has the exact
load, the fewest reciprocal pairs and as many failing authors with a passing reviewer as the
class allows (``k`` per passing student).  Moves hand the authors of two or three reviews on
to the next of them (``(r1, a1), (r2, a2) -> (r1, a2), (r2, a1)``), which keeps every load:

1. conflicts (and reciprocal pairs) of the start are annealed away;
2. if some remain, an augmenting-path search for ``k`` reviews each way outside the conflicts
   either proves that none exist (a set of students whose possible partners are all full; the
   error names their conflict pairs) or gives a start; with ``n >= 2k + 1`` the rules ask for
   ``2k`` partners per student outside the conflicts, found by annealing switches of pairs,
   and walking the Euler circuits of those pairs turns them into ``k`` reviews each way;
3. the soft goals are annealed with moves that never add a conflict or a reciprocal pair,
   and the best plan seen is kept, so no goal ends worse than the start.

The same students, ``k``, seed, unit, conflicts and staff give the same plan whatever their order.
"""

import csv
import hmac
import io
import math
import random
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

#: The roles of :class:`Assignment`.
STUDENT = "student"
STAFF = "staff"
#: The reasons of :class:`Assignment`: why the reviewer got the author.
ROTATION = "rotation"
DIFFERENT_APPROACH = "different approach"
PASSING_FOR_FAILING = "passing reviewer for a failing author"
STAFF_REASON = "staff"
#: The columns of :func:`to_csv`.
CSV_COLUMNS = ("reviewer", "author", "author_alias", "unit", "role", "reason")
#: Hex digits of an :func:`alias`.
ALIAS_LENGTH = 10
#: At most this many pairs are named in a :class:`PlanError`.
MAX_PAIRS_NAMED = 10

Cost = tuple[int, int, int, int]  # conflicts, reciprocal pairs, uncovered failing authors, same approach


@dataclass(frozen=True)
class Author:
    """A student of the round: they write a solution and review ``k`` others."""

    id: str
    approach: str = ""  # a label of the approach for the unit ("einsum", "matmul"); "" unknown
    passed: bool = True  # did the student pass the unit (exercise or module)


@dataclass(frozen=True)
class Assignment:
    """One review: ``reviewer`` reviews ``author``'s solution."""

    reviewer: str
    author: str
    role: str  # STUDENT or STAFF
    reason: str  # ROTATION, DIFFERENT_APPROACH, PASSING_FOR_FAILING or STAFF_REASON


@dataclass
class Plan:
    """The reviews of one unit: students first, then staff, each sorted by reviewer and author."""

    unit: str
    k: int
    seed: str
    assignments: list[Assignment]
    notes: list[str]  # what could not be avoided or met, in words

    def reviewers_of(self, author: str) -> list[str]:
        """Who reviews ``author`` (students, then staff), sorted within each role."""
        return [a.reviewer for a in self.assignments if a.author == author]

    def tasks_of(self, reviewer: str) -> list[str]:
        """The authors ``reviewer`` reviews, sorted."""
        return [a.author for a in self.assignments if a.reviewer == reviewer]


class PlanError(ValueError):
    """No plan satisfies the hard rules (too few students, conflict pairs, bad arguments)."""


def alias(key: bytes, student_id: str, round_id: str) -> str:
    """The student's alias in one review round: a keyed hash (RepoBee's double-blind key),
    ``ALIAS_LENGTH`` hex digits of HMAC-SHA256 of ``"round:student"``.  The same key, student and
    round give the same alias; another round or key gives another one, and without the key the
    alias tells nothing about the student."""
    return hmac.new(key, f"{round_id}:{student_id}".encode(), "sha256").hexdigest()[:ALIAS_LENGTH]


def to_csv(plan: Plan, aliases: Mapping[str, str]) -> str:
    """The plan as CSV text with the columns :data:`CSV_COLUMNS`, one row per assignment in plan
    order; ``aliases`` maps each author to their alias (:func:`alias`).  Raises
    :class:`PlanError` for an author without an alias."""
    missing = sorted({a.author for a in plan.assignments} - set(aliases))
    if missing:
        raise PlanError(f"no alias for author(s) {', '.join(missing)}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for a in plan.assignments:
        writer.writerow((a.reviewer, a.author, aliases[a.author], plan.unit, a.role, a.reason))
    return buffer.getvalue()


def make_plan(
    authors: Sequence[Author],
    k: int,
    seed: str | int,
    unit: str = "",
    conflicts: Collection[tuple[str, str]] = (),
    staff: Sequence[str] = (),
    staff_load: int = 0,
) -> Plan:
    """The reviews of one unit: each of ``authors`` reviews ``k`` others and is reviewed by ``k``.

    ``conflicts`` are unordered pairs of ids that must not review each other (pairs naming an
    id that is neither a student nor staff are ignored).  ``staff`` ids each review
    ``staff_load`` authors on top of the students' reviews.  Raises :class:`PlanError` when the
    hard rules cannot be met; the message says why and names the blocking pairs.
    """
    if k < 1:
        raise PlanError(f"k = {k}: each student must review at least 1 author")
    if staff_load < 0:
        raise PlanError(f"staff_load = {staff_load}: a staff reviewer cannot review fewer than 0 authors")
    students = sorted(authors, key=lambda a: a.id)
    ids = [a.id for a in students]
    _check_unique(ids, "student")
    staff_ids = sorted(staff)
    _check_unique(staff_ids, "staff")
    both = sorted(set(ids) & set(staff_ids))
    if both:
        raise PlanError(f"{', '.join(both)} cannot be both a student and staff in one round")
    n = len(students)
    if n < k + 1:
        raise PlanError(
            f"{n} student{'s' if n != 1 else ''} cannot each get {k} reviewer{'s' if k != 1 else ''}: "
            f"a review round needs at least k + 1 = {k + 1} students"
        )
    seed = str(seed)
    rng = random.Random(f"{seed}:{unit}")
    index = {sid: i for i, sid in enumerate(ids)}
    pairs = _normalize_conflicts(conflicts, set(ids) | set(staff_ids))
    blocked = {(index[a], index[b]) for a, b in pairs if a in index and b in index}
    blocked |= {(b, a) for a, b in blocked}
    search = _Search(students, k, blocked, rng)
    if n >= 2 * k + 1:
        _check_room(search, pairs, ids)
    order = _circle(students, rng)
    rotation = [(order[i], order[(i + j) % n]) for i in range(n) for j in range(1, k + 1)]
    search.load(rotation)
    cost = search.cost()
    if cost[0] or cost[1] > search.lower[1]:
        cost = search.repair()
    if cost[0] or (cost[1] and n >= 2 * k + 1):
        # the proof that no plan avoids the conflicts even with reciprocal reviews, or one that does
        completed = _complete(n, k, [arc for arc in search.arcs if arc not in blocked], blocked, ids)
        edges = _factor(n, 2 * k, blocked, rotation, rng) if n >= 2 * k + 1 else None
        if edges is not None:  # 2k reviews per student, no pair twice: orient it k in, k out
            search.load(_euler_orientation(n, edges))
            cost = search.cost()
        else:
            search.load(completed)
            cost = search.repair()
    if cost[0] or (cost[1] and n >= 2 * k + 1):
        raise PlanError(
            f"found no plan that keeps the conflict pairs {_name_pairs(sorted(pairs))} apart "
            f"without students who review each other; the conflicts may make it impossible: drop some or lower k"
        )
    cost = search.improve()
    students_plan = [
        Assignment(ids[r], ids[a], STUDENT, _reason(students[r], students[a])) for r, a in sorted(search.arcs)
    ]
    staff_plan, staff_notes = _staff(students, staff_ids, staff_load, pairs, rng)
    notes = _notes(search, cost, ids) + staff_notes
    assignments = sorted(students_plan, key=lambda a: (a.reviewer, a.author)) + staff_plan
    return Plan(unit, k, seed, assignments, notes)


def _check_unique(ids: Sequence[str], what: str) -> None:
    """Raise :class:`PlanError` for an id given twice."""
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise PlanError(f"{what} id(s) given more than once: {', '.join(twice)}")


def _normalize_conflicts(conflicts: Collection[tuple[str, str]], known: set[str]) -> set[tuple[str, str]]:
    """The conflict pairs as sorted tuples of two different known ids."""
    pairs = set()
    for pair in conflicts:
        if len(pair) != 2:
            raise PlanError(f"a conflict is a pair of ids, not {pair!r}")
        a, b = sorted((str(pair[0]), str(pair[1])))
        if a != b and a in known and b in known:
            pairs.add((a, b))
    return pairs


def _name_pairs(pairs: Sequence[tuple[str, str]]) -> str:
    """``(a, b), (c, d)``, at most :data:`MAX_PAIRS_NAMED` of them."""
    named = ", ".join(f"({a}, {b})" for a, b in pairs[:MAX_PAIRS_NAMED])
    more = len(pairs) - MAX_PAIRS_NAMED
    return named + (f" and {more} more" if more > 0 else "")


def _check_room(search: "_Search", pairs: set[tuple[str, str]], ids: Sequence[str]) -> None:
    """With ``n >= 2k + 1`` nobody reviews a student who reviews them, so each student needs
    ``2k`` other students outside their conflicts and the class ``n * k`` free pairs; raise
    :class:`PlanError` naming the conflict pairs when not."""
    n, k = search.n, search.k
    student_pairs = sorted(pair for pair in pairs if pair[0] in search.index and pair[1] in search.index)
    for student in ids:
        own = [pair for pair in student_pairs if student in pair]
        if n - 1 - len(own) < 2 * k:
            raise PlanError(
                f"the conflict pairs {_name_pairs(own)} leave {student} {n - 1 - len(own)} other students; "
                f"reviewing {k} and reviewed by {k} others, without reviewing each other, needs {2 * k}"
            )
    if search.lower[1]:
        raise PlanError(
            f"the conflict pairs {_name_pairs(student_pairs)} leave {search.free_pairs} pairs of students for "
            f"{n * k} reviews: some students would have to review each other; drop some conflicts or lower k"
        )


def _circle(students: Sequence[Author], rng: random.Random) -> list[int]:
    """The students' places in the rotation: shuffled, each passing student followed by an equal
    share (within one) of the failing students, so that each failing author has a passing one
    within ``k`` places before it as long as ``k`` per passing student suffice."""
    passing = [i for i, s in enumerate(students) if s.passed]
    failing = [i for i, s in enumerate(students) if not s.passed]
    rng.shuffle(passing)
    rng.shuffle(failing)
    if not passing or not failing:
        return passing + failing
    # the gap after passing student g holds base or base + 1 failing students
    base, extra = divmod(len(failing), len(passing))
    longer = set(rng.sample(range(len(passing)), extra))
    order, taken = [], 0
    for g, p in enumerate(passing):
        size = base + (g in longer)
        order += [p, *failing[taken : taken + size]]
        taken += size
    return order


class _Search:
    """Seeded local search over the reviews ``(reviewer, author)`` of the students (indices).

    The cost is a tuple compared in order: reviews between conflict pairs, reciprocal pairs,
    failing authors without a passing reviewer (only when somebody passed), reviews whose
    reviewer and author share a known approach.  A move hands the authors of two or three
    reviews on to the next of them (``(r1, a1), (r2, a2) -> (r1, a2), (r2, a1)``; with three
    reviews a rotation, which also turns a cycle around), so no load ever changes.
    :meth:`repair` anneals the first two parts (the hard rules) from a start that breaks them;
    :meth:`improve` anneals the last two with moves that never raise the first two.  Both keep
    the best reviews they saw.
    """

    def __init__(self, students: Sequence[Author], k: int, blocked: set[tuple[int, int]], rng: random.Random):
        self.n = n = len(students)
        self.index = {s.id: i for i, s in enumerate(students)}
        self.k = k
        self.rng = rng
        self.blocked = blocked
        self.passed = [int(s.passed) for s in students]
        self.failing = [not s.passed for s in students]
        self.approach = [s.approach for s in students]
        self.n_passing = sum(self.passed)
        n_failing = n - self.n_passing
        self.count_uncovered = self.n_passing > 0 and n_failing > 0
        self.free_pairs = n * (n - 1) // 2 - len(blocked) // 2
        # lower bounds of the cost parts, to stop early: n * k reviews over the free pairs force
        # reciprocal ones; a passing student can cover k failing authors; a group of g students
        # with one approach gets k * g reviews, at most k * (n - g) of them from outside
        reciprocal_min = max(0, n * k - self.free_pairs)
        uncovered_min = max(0, n_failing - self.n_passing * k) if self.count_uncovered else 0
        groups = Counter(label for label in self.approach if label)
        same_min = sum(max(0, k * (2 * g - n)) for g in groups.values())
        self.lower = (0, reciprocal_min, uncovered_min, same_min)
        self.arcs: list[tuple[int, int]] = []
        self.has: set[tuple[int, int]] = set()
        self.pass_in = [0] * n

    def load(self, arcs: list[tuple[int, int]]) -> None:
        """Start from these reviews."""
        self.arcs = list(arcs)
        self.has = set(arcs)
        self.pass_in = [0] * self.n
        for r, a in arcs:
            self.pass_in[a] += self.passed[r]

    def _same(self, r: int, a: int) -> int:
        """1 when reviewer and author share a known approach."""
        return int(bool(self.approach[r]) and self.approach[r] == self.approach[a])

    def _uncovered(self, a: int, passing_reviewers: int) -> int:
        """1 when ``a`` is a failing author without a passing reviewer (and that counts)."""
        return int(self.count_uncovered and self.failing[a] and passing_reviewers == 0)

    def reciprocal_pairs(self) -> list[tuple[int, int]]:
        """The pairs ``(r, a)``, ``r < a``, that review each other."""
        return [(r, a) for r, a in self.arcs if r < a and (a, r) in self.has]

    def cost(self) -> Cost:
        """The cost of the current reviews."""
        conflicts = sum(1 for arc in self.arcs if arc in self.blocked)
        reciprocal = len(self.reciprocal_pairs())
        uncovered = sum(self._uncovered(a, self.pass_in[a]) for a in range(self.n))
        same = sum(self._same(r, a) for r, a in self.arcs)
        return conflicts, reciprocal, uncovered, same

    def _bad(self, cost: Cost, parts: int) -> list[int]:
        """The reviews to move first: those behind the first of the first ``parts`` parts of
        the cost that is above its bound (none when all are at their bounds)."""
        tests: list[Callable[[int, int], bool]] = [
            lambda r, a: (r, a) in self.blocked,
            lambda r, a: (a, r) in self.has,
            lambda r, a: bool(self._uncovered(a, self.pass_in[a])),
            lambda r, a: bool(self._same(r, a)),
        ]
        for part, bound, test in zip(cost[:parts], self.lower, tests):
            if part > bound:
                return [i for i, (r, a) in enumerate(self.arcs) if test(r, a)]
        return []

    def _hard_bad(self, cost: Cost) -> list[int]:
        """The reviews between conflict pairs, and those of reciprocal pairs while there are more
        than the bound."""
        reciprocal_too = cost[1] > self.lower[1]
        return [
            i for i, (r, a) in enumerate(self.arcs) if (r, a) in self.blocked or (reciprocal_too and (a, r) in self.has)
        ]

    def _propose(self, x: int) -> tuple[list[int], list[tuple[int, int]], list[tuple[int, int]]] | None:
        """A random move of review ``x`` with one or two others: the indices, the reviews it
        removes and those it adds; None when it would make a self-review or a duplicate."""
        m = len(self.arcs)
        picks = [x, self.rng.randrange(m)]
        if self.rng.random() < 0.3:  # a rotation of three
            picks.append(self.rng.randrange(m))
        old = [self.arcs[i] for i in picks]
        reviewers = [r for r, _ in old]
        authors = [a for _, a in old]
        if len(set(reviewers)) < len(picks) or len(set(authors)) < len(picks):
            return None
        new = [(reviewers[i], authors[(i + 1) % len(picks)]) for i in range(len(picks))]
        # a new review can equal no removed one (reviewers and authors are distinct)
        if any(r == a or (r, a) in self.has for r, a in new):
            return None
        return picks, old, new

    def _delta(self, old: list[tuple[int, int]], new: list[tuple[int, int]]) -> Cost:
        """The change of the cost if the reviews ``old`` are replaced by ``new``."""
        has, blocked = self.has, self.blocked
        removed, added = set(old), set(new)

        def after(u: int, v: int) -> bool:
            return ((u, v) in has and (u, v) not in removed) or (u, v) in added

        conflicts = sum(arc in blocked for arc in new) - sum(arc in blocked for arc in old)
        pairs = {(min(u, v), max(u, v)) for u, v in old + new}
        reciprocal = sum(after(u, v) and after(v, u) for u, v in pairs) - sum(
            (u, v) in has and (v, u) in has for u, v in pairs
        )
        uncovered = 0
        if self.count_uncovered:
            change: dict[int, int] = {}
            for r, a in old:
                change[a] = change.get(a, 0) - self.passed[r]
            for r, a in new:
                change[a] = change.get(a, 0) + self.passed[r]
            uncovered = sum(
                self._uncovered(a, self.pass_in[a] + d) - self._uncovered(a, self.pass_in[a]) for a, d in change.items()
            )
        same = sum(self._same(r, a) for r, a in new) - sum(self._same(r, a) for r, a in old)
        return conflicts, reciprocal, uncovered, same

    def _apply(self, picks: list[int], old: list[tuple[int, int]], new: list[tuple[int, int]]) -> None:
        """Replace the reviews ``old`` at ``picks`` by ``new``."""
        self.has.difference_update(old)
        self.has.update(new)
        for i, (r, a), arc in zip(picks, old, new):
            self.arcs[i] = arc
            self.pass_in[a] -= self.passed[r]
            self.pass_in[arc[1]] += self.passed[arc[0]]

    def repair(self) -> Cost:
        """Anneal the hard parts (``2 * conflicts + reciprocal pairs``) down to their bounds;
        the best reviews found stay loaded.  Returns their cost."""
        cost = self.cost()
        target = self.lower[1]
        best, best_arcs = cost, list(self.arcs)
        budget = 100 * len(self.arcs) + 20000
        stall_limit = 2000 + 20 * len(self.arcs)  # for reciprocal pairs above a bound that may be out of reach
        stall = 0
        bad = self._hard_bad(cost)
        for attempt in range(budget):
            if 2 * cost[0] + cost[1] <= target or (best[0] == 0 and stall > stall_limit):
                break
            stall += 1
            move = self._propose(bad[self.rng.randrange(len(bad))])
            if move is None:
                continue
            delta = self._delta(move[1], move[2])
            rise = 2 * delta[0] + delta[1]
            temperature = 0.8 * (1 - attempt / budget) + 0.02
            if rise > 0 and self.rng.random() >= math.exp(-rise / temperature):
                continue
            self._apply(*move)
            cost = _add(cost, delta)
            bad = self._hard_bad(cost)
            if cost[:2] < best[:2]:
                best, best_arcs, stall = cost, list(self.arcs), 0
        self.load(best_arcs)
        return best

    def improve(self) -> Cost:
        """Anneal the soft parts (failing authors without a passing reviewer first, then
        same-approach reviews) with moves that never add a conflict or a reciprocal pair; the
        best reviews found stay loaded, so no part ends higher than it started.  Returns their cost."""
        cost = self.cost()
        m = len(self.arcs)
        weight = m + 1  # one failing author covered outweighs every same-approach review
        best, best_arcs = cost, list(self.arcs)
        budget = 60 * m + 2000
        stall_limit = 1000 + 10 * m
        stall = 0
        bad = self._bad(cost, 4)
        for attempt in range(budget):
            if not bad or stall > stall_limit:
                break
            stall += 1
            move = self._propose(bad[self.rng.randrange(len(bad))])
            if move is None:
                continue
            delta = self._delta(move[1], move[2])
            if delta[0] > 0 or delta[1] > 0:
                continue
            rise = weight * delta[2] + delta[3]
            temperature = 0.6 * (1 - attempt / budget) + 0.02
            if rise > 0 and self.rng.random() >= math.exp(-rise / temperature):
                continue
            self._apply(*move)
            cost = _add(cost, delta)
            bad = self._bad(cost, 4)
            if cost < best:
                best, best_arcs, stall = cost, list(self.arcs), 0
        self.load(best_arcs)
        return best


def _add(cost: Cost, delta: Cost) -> Cost:
    """``cost + delta``, part by part."""
    return cost[0] + delta[0], cost[1] + delta[1], cost[2] + delta[2], cost[3] + delta[3]


def _complete(
    n: int, k: int, arcs: list[tuple[int, int]], blocked: set[tuple[int, int]], ids: Sequence[str]
) -> list[tuple[int, int]]:
    """``arcs`` (allowed, each reviewer and author at most ``k`` times) grown by augmenting paths
    to ``k`` reviews per student avoiding ``blocked`` and self-reviews; raises :class:`PlanError`
    naming the conflict pairs that make it impossible (a Hall violation: a set of reviewers
    whose allowed authors are all full)."""
    out_deg = [0] * n
    in_deg = [0] * n
    reviewers_of: list[set[int]] = [set() for _ in range(n)]  # matched reviews into each author
    for r, a in arcs:
        out_deg[r] += 1
        in_deg[a] += 1
        reviewers_of[a].add(r)
    for start in range(n):
        while out_deg[start] < k:
            # breadth-first over alternating paths: reviewer -(new review)-> author -(existing)-> reviewer
            came_from: dict[int, int] = {}  # author -> reviewer it was reached from
            via: dict[int, int] = {start: -1}  # reviewer -> author it was reached through
            queue = deque([start])
            end = -1
            while queue and end < 0:
                r = queue.popleft()
                for a in range(n):
                    if a == r or a in came_from or (r, a) in blocked or r in reviewers_of[a]:
                        continue
                    came_from[a] = r
                    if in_deg[a] < k:
                        end = a
                        break
                    for r2 in sorted(reviewers_of[a]):
                        if r2 not in via:
                            via[r2] = a
                            queue.append(r2)
            if end < 0:
                culprits = sorted(
                    (min(ids[r], ids[a]), max(ids[r], ids[a]))
                    for r in via
                    for a in range(n)
                    if a not in came_from and a != r and (r, a) in blocked
                )
                named = _name_pairs(sorted(set(culprits)))
                raise PlanError(
                    f"the conflict pairs {named} leave too few possible reviewers: no plan gives "
                    f"every student {k} reviewer{'s' if k != 1 else ''} and {k} review{'s' if k != 1 else ''}"
                )
            a = end
            in_deg[a] += 1
            while True:  # flip the path back to start
                r = came_from[a]
                reviewers_of[a].add(r)
                previous = via[r]
                if previous < 0:
                    out_deg[r] += 1
                    break
                reviewers_of[previous].discard(r)
                a = previous
    return [(r, a) for a in range(n) for r in sorted(reviewers_of[a])]


def _factor(
    n: int, degree: int, blocked: set[tuple[int, int]], arcs: list[tuple[int, int]], rng: random.Random
) -> set[tuple[int, int]] | None:
    """Pairs ``(u, v)``, ``u < v``, outside ``blocked`` in which every student is ``degree``
    times, or None if none was found: anneals the pairs of ``arcs`` (a start with that degree
    and no pair twice) with switches ``{u, v}, {x, y} -> {u, x}, {v, y}``, which keep every degree
    and can reach every such set of pairs (Taylor 1981)."""
    edges = sorted({(min(r, a), max(r, a)) for r, a in arcs})
    present = set(edges)
    bad_count = sum(edge in blocked for edge in edges)
    best, best_edges = bad_count, list(edges)
    budget = 200 * len(edges) + 20000
    for attempt in range(budget):
        if bad_count == 0:
            break
        bad = [i for i, edge in enumerate(edges) if edge in blocked]
        i = bad[rng.randrange(len(bad))]
        j = rng.randrange(len(edges))
        u, v = edges[i]
        x, y = edges[j] if rng.random() < 0.5 else edges[j][::-1]
        first, second = (min(u, x), max(u, x)), (min(v, y), max(v, y))
        if u == x or v == y or first in present or second in present:
            continue
        rise = (first in blocked) + (second in blocked) - (edges[i] in blocked) - (edges[j] in blocked)
        temperature = 0.8 * (1 - attempt / budget) + 0.02
        if rise > 0 and rng.random() >= math.exp(-rise / temperature):
            continue
        present -= {edges[i], edges[j]}
        present |= {first, second}
        edges[i], edges[j] = first, second
        bad_count += rise
        if bad_count < best:
            best, best_edges = bad_count, list(edges)
    return set(best_edges) if best == 0 else None


def _euler_orientation(n: int, edges: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """The pairs ``edges`` (every student in an even number) turned into reviews along Euler
    circuits (Hierholzer), so that each student reviews as many as review them."""
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for u, v in sorted(edges):
        neighbours[u].append(v)
        neighbours[v].append(u)
    unused = set(edges)
    arcs = []
    for start in range(n):
        stack = [start]
        while stack:
            u = stack[-1]
            while neighbours[u] and (min(u, neighbours[u][-1]), max(u, neighbours[u][-1])) not in unused:
                neighbours[u].pop()
            if neighbours[u]:
                v = neighbours[u].pop()
                unused.discard((min(u, v), max(u, v)))
                arcs.append((u, v))
                stack.append(v)
            else:
                stack.pop()
    return arcs


def _reason(reviewer: Author, author: Author) -> str:
    """Why ``reviewer`` is a good reviewer for ``author``, in the words of :class:`Assignment`."""
    if not author.passed and reviewer.passed:
        return PASSING_FOR_FAILING
    if reviewer.approach and author.approach and reviewer.approach != author.approach:
        return DIFFERENT_APPROACH
    return ROTATION


def _notes(search: _Search, cost: Cost, ids: Sequence[str]) -> list[str]:
    """The notes on the students' reviews: what the rules could not avoid and the soft goals not met."""
    notes = []
    n, k = search.n, search.k
    _, reciprocal, uncovered, same = cost
    if reciprocal:
        pairs = sorted((ids[r], ids[a]) for r, a in search.arcs if r < a and (a, r) in search.has)
        why = (
            f"with {n} students and k = {k}, n <= 2k: {n} * {k} reviews over {search.free_pairs} pairs "
            f"{'not in conflict ' if search.blocked else ''}force at least {search.lower[1]}"
        )
        if reciprocal > search.lower[1]:
            why += f" (the plan found has {reciprocal - search.lower[1]} more)"
        notes.append(f"{reciprocal} reciprocal pair(s) (A reviews B and B reviews A), {why}: {_name_pairs(pairs)}")
    if uncovered:
        authors = sorted(ids[a] for a in range(n) if search._uncovered(a, search.pass_in[a]))
        notes.append(
            f"{uncovered} failing author(s) have no passing reviewer ({search.n_passing} passing student(s) "
            f"review {search.n_passing * k} authors): {', '.join(authors)}"
        )
    elif search.n_passing == 0 and any(search.failing):
        notes.append("no student passed the unit: failing authors have no passing reviewer")
    if same:
        notes.append(
            f"{same} of {n * k} reviews pair a reviewer and an author with the same approach "
            f"(at least {search.lower[3]} unavoidable)"
        )
    return notes


def _staff(
    students: Sequence[Author], staff: Sequence[str], load: int, pairs: set[tuple[str, str]], rng: random.Random
) -> tuple[list[Assignment], list[str]]:
    """The staff reviews, on top of the students': staff take turns (in id order) picking the
    next author of a queue that holds the failing authors, then the others (each group in a
    seeded order), skipping authors they already have or are in conflict with."""
    if not staff or load == 0:
        return [], []
    failing = [s.id for s in students if not s.passed]
    passing = [s.id for s in students if s.passed]
    rng.shuffle(failing)
    rng.shuffle(passing)
    queue = failing + passing
    tasks: dict[str, list[str]] = {member: [] for member in staff}
    position = 0
    for _ in range(load):
        for member in staff:
            for step in range(len(queue)):
                author = queue[(position + step) % len(queue)]
                if author not in tasks[member] and tuple(sorted((member, author))) not in pairs:
                    tasks[member].append(author)
                    position = (position + step + 1) % len(queue)
                    break
    assignments = [
        Assignment(member, author, STAFF, STAFF_REASON) for member in staff for author in sorted(tasks[member])
    ]
    short = [f"{member} ({len(tasks[member])})" for member in staff if len(tasks[member]) < load]
    if not short:
        return assignments, []
    return assignments, [f"staff with fewer than {load} authors (too few authors or conflicts): {', '.join(short)}"]
