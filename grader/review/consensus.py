"""Scores of a review round (``python -m grader review score``): consensus, reviewer quality, staff flags.

The rules follow CrowdGrader (de Alfaro & Shavlovsky, UCSC-SOE-13-11):

* **Consensus.** Per author, unit and rubric item, the median of the scores the reviewers
  gave (``statistics.median``: with an even count it is the mean of the two middle scores,
  so it may be ``x.5``).  The reviewers' own scores are part of it.
* **Agreement** of a reviewer: the mean over their reviews and the items they scored of
  ``1 - |c - g| / p`` (``c`` consensus, ``g`` given, ``p`` the item's highest level), in
  ``[0, 1]``: CrowdGrader's review grade ``p - |c - g|`` divided by ``p``.  A reviewer who is the
  only one on an author agrees with themselves (``c == g``, so 1.0); ``None`` only when the
  reviewer scored no item at all.
* **Helpfulness** of a reviewer: the mean of the ratings (-2..+2) the authors gave their
  reviews, without tit-for-tat: a rating of 0 or less on a review that scored the author below
  the consensus (the sum of the scores it gave against the sum of the consensus on the same
  items) is dropped and counted in ``ratings_dropped``.  ``None`` when no rating is left.
* **Flags for staff**: ``large disagreement`` (a score at least half the item's range away
  from the consensus, ``|c - g| >= p / 2``), ``empty review`` (no comments, and no scores or
  fewer than 20 characters of text), ``author without reviews`` (an author and unit with no
  review that is not empty, including the pairs of ``expected`` nobody reviewed),
  ``lone top score on a failing solution`` (a review giving every item its highest level to
  an author the grader failed, while the author's other reviewers did not), ``rated harmful``
  (the author rated the review -2, "harmful or rude") and ``flagged by staff`` (a moderator's
  note on the review page).

Inputs are plain :class:`Review` records (the web app's database layer builds them) and a
:class:`~grader.review.form.Rubric`; :func:`score` gives a :class:`ScoreReport` and
:func:`to_csv` its three CSV files.  Everything is sorted, so the report does not depend on
the order of the reviews: consensus rows by author and unit, then the items in rubric order;
reviewers by name; flags by kind, author, unit, reviewer and item.
"""

import csv
import io
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.review.form import Rubric

#: The flag kinds, as they appear in ``flags.csv``.
LARGE_DISAGREEMENT = "large disagreement"
EMPTY_REVIEW = "empty review"
AUTHOR_WITHOUT_REVIEWS = "author without reviews"
LONE_TOP_SCORE = "lone top score on a failing solution"
RATED_HARMFUL = "rated harmful"
FLAGGED_BY_STAFF = "flagged by staff"
#: Grader statuses of a solution that works (a top score on any other is suspicious).
WORKING = ("passed",)
#: A review with fewer characters of text than this, and no line comment, is empty.
MIN_TEXT_CHARS = 20
#: The ratings an author may give a review.
RATINGS = range(-2, 3)

#: The files of :func:`to_csv` and their columns.
COLUMNS = {
    "consensus.csv": ("author", "unit", "item", "consensus", "n_reviews"),
    "reviewers.csv": ("reviewer", "reviews", "agreement", "helpfulness", "ratings_dropped"),
    "flags.csv": ("kind", "reviewer", "author", "unit", "item", "detail"),
}


@dataclass(frozen=True)
class Review:
    """One reviewer's review of one author's unit (an exercise or a module)."""

    reviewer: str
    author: str
    unit: str
    #: item id -> level index; an item the reviewer did not fill is missing
    scores: Mapping[str, int]
    #: the number of line comments
    comments: int
    #: the characters of the comments and the summary together
    text_chars: int
    #: the author's rating of this review, -2..+2; None if not rated
    helpful: int | None = None
    #: the grader's status of the author's solution ("" unknown)
    author_status: str = ""
    #: notes of staff who flagged the review
    staff_flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Consensus:
    """The consensus of one item of one author's unit; ``None`` when no reviewer scored it."""

    author: str
    unit: str
    item: str
    consensus: float | None
    n_reviews: int


@dataclass(frozen=True)
class ReviewerScore:
    """How one reviewer did: agreement with the consensus and the authors' ratings."""

    reviewer: str
    reviews: int
    agreement: float | None
    helpfulness: float | None
    ratings_dropped: int


@dataclass(frozen=True)
class Flag:
    """Something for staff to look at; fields that do not apply are ``""``."""

    kind: str
    reviewer: str
    author: str
    unit: str
    item: str
    detail: str


@dataclass(frozen=True)
class ScoreReport:
    """The scores of a round, each part sorted."""

    consensus: tuple[Consensus, ...]
    reviewers: tuple[ReviewerScore, ...]
    flags: tuple[Flag, ...]

    def consensus_of(self, author: str, unit: str, item: str) -> float | None:
        """The consensus of ``item`` on ``author``'s ``unit`` (``None``: nobody scored it);
        raises ``KeyError`` for an author and unit nobody reviewed."""
        for row in self.consensus:
            if (row.author, row.unit, row.item) == (author, unit, item):
                return row.consensus
        raise KeyError((author, unit, item))

    def reviewer(self, name: str) -> ReviewerScore:
        """The scores of reviewer ``name``; raises ``KeyError`` if they wrote no review."""
        for row in self.reviewers:
            if row.reviewer == name:
                return row
        raise KeyError(name)


def is_empty(review: Review) -> bool:
    """Whether ``review`` has no line comment and either no score or under
    :data:`MIN_TEXT_CHARS` characters of text."""
    return review.comments == 0 and (not review.scores or review.text_chars < MIN_TEXT_CHARS)


def check(reviews: Sequence[Review], rubric: Rubric) -> None:
    """Raise ``ValueError`` for a review that scores an item not in ``rubric`` or outside its
    levels, a rating outside -2..+2, or a second review of the same author and unit by the
    same reviewer."""
    items = rubric.by_id
    seen = set()
    for review in reviews:
        where = f"review of {review.author}/{review.unit} by {review.reviewer}"
        key = (review.reviewer, review.author, review.unit)
        if key in seen:
            raise ValueError(f"{where}: a second review of the same author and unit by the same reviewer")
        seen.add(key)
        for item_id, given in review.scores.items():
            if item_id not in items:
                raise ValueError(f"{where}: item '{item_id}' is not in the rubric ({', '.join(items)})")
            if not 0 <= given <= items[item_id].max:
                raise ValueError(f"{where}: item '{item_id}' scored {given}, outside 0..{items[item_id].max}")
        if review.helpful is not None and review.helpful not in RATINGS:
            raise ValueError(f"{where}: rating {review.helpful} outside -2..+2")


def score(reviews: Iterable[Review], rubric: Rubric, expected: Iterable[tuple[str, str]] = ()) -> ScoreReport:
    """The consensus, reviewer scores and flags of a round (the module docstring gives the rules).

    ``expected`` lists the ``(author, unit)`` pairs that should have been reviewed (from the
    plan), so that the ones nobody reviewed are flagged too.  Raises ``ValueError`` for the
    reviews :func:`check` rejects.
    """
    ordered = sorted(reviews, key=_review_key)
    check(ordered, rubric)
    items = rubric.by_id

    by_work: dict[tuple[str, str], list[Review]] = defaultdict(list)
    for review in ordered:
        by_work[(review.author, review.unit)].append(review)

    medians: dict[tuple[str, str, str], float] = {}
    consensus = []
    for (author, unit), work in sorted(by_work.items()):
        for item in rubric.items:
            scored = [review.scores[item.id] for review in work if item.id in review.scores]
            value = statistics.median(scored) if scored else None
            if value is not None:
                medians[(author, unit, item.id)] = value
            consensus.append(Consensus(author, unit, item.id, value, len(scored)))

    flags = []
    terms: dict[str, list[float]] = defaultdict(list)
    ratings: dict[str, list[int]] = defaultdict(list)
    dropped: dict[str, int] = defaultdict(int)
    for review in ordered:
        given_sum = consensus_sum = 0.0
        for item_id, given in sorted(review.scores.items()):
            c = medians[(review.author, review.unit, item_id)]
            p = items[item_id].max
            given_sum += given
            consensus_sum += c
            if p == 0:  # a one-level item (only a Rubric built by hand has one): nothing to agree on
                continue
            terms[review.reviewer].append(1 - abs(c - given) / p)
            if abs(c - given) >= p / 2:
                detail = f"gave {given}, consensus {_number(c)} (levels 0..{p})"
                flags.append(Flag(LARGE_DISAGREEMENT, review.reviewer, review.author, review.unit, item_id, detail))
        if is_empty(review):
            what = "no scores" if not review.scores else f"{review.text_chars} characters of text"
            detail = f"{what} and no line comments"
            flags.append(Flag(EMPTY_REVIEW, review.reviewer, review.author, review.unit, "", detail))
        if review.helpful == min(RATINGS):
            flags.append(Flag(RATED_HARMFUL, review.reviewer, review.author, review.unit, "", "the author rated it -2"))
        for note in review.staff_flags:
            flags.append(Flag(FLAGGED_BY_STAFF, review.reviewer, review.author, review.unit, "", note))
        if review.helpful is not None:
            if review.helpful <= 0 and given_sum < consensus_sum:  # tit for tat: a low score, a low rating
                dropped[review.reviewer] += 1
            else:
                ratings[review.reviewer].append(review.helpful)

    for (author, unit), work in sorted(by_work.items()):
        tops = [r for r in work if _all_top(r, rubric)]
        if len(tops) == 1 and len(work) > 1 and tops[0].author_status and tops[0].author_status not in WORKING:
            detail = (
                f"every item at its highest level; the grader says {tops[0].author_status}; the other reviews did not"
            )
            flags.append(Flag(LONE_TOP_SCORE, tops[0].reviewer, author, unit, "", detail))

    for author, unit in sorted(set(by_work) | set(expected)):
        work = by_work.get((author, unit), [])
        if not [review for review in work if not is_empty(review)]:
            detail = f"{len(work)} review{'' if len(work) == 1 else 's'}, all empty" if work else "no review"
            flags.append(Flag(AUTHOR_WITHOUT_REVIEWS, "", author, unit, "", detail))

    counts = Counter(review.reviewer for review in ordered)
    reviewers = []
    for name in sorted(counts):
        agreement = math.fsum(terms[name]) / len(terms[name]) if terms[name] else None
        helpfulness = sum(ratings[name]) / len(ratings[name]) if ratings[name] else None
        reviewers.append(ReviewerScore(name, counts[name], agreement, helpfulness, dropped[name]))

    return ScoreReport(tuple(consensus), tuple(reviewers), tuple(sorted(flags, key=_flag_key)))


def _all_top(review: Review, rubric: Rubric) -> bool:
    """Whether ``review`` scored every item of ``rubric`` at its highest level."""
    return all(review.scores.get(item.id) == item.max for item in rubric.items)


def to_csv(report: ScoreReport) -> dict[str, str]:
    """The report as CSV texts by file name: ``consensus.csv``, ``reviewers.csv`` and
    ``flags.csv`` (columns in :data:`COLUMNS`); a missing value is an empty cell, numbers are
    written without trailing zeros (``2``, ``1.5``) and agreement to 4 decimals."""
    rows: dict[str, list[tuple[object, ...]]] = {
        "consensus.csv": [(c.author, c.unit, c.item, _number(c.consensus), c.n_reviews) for c in report.consensus],
        "reviewers.csv": [
            (r.reviewer, r.reviews, _number(r.agreement, 4), _number(r.helpfulness, 4), r.ratings_dropped)
            for r in report.reviewers
        ],
        "flags.csv": [(f.kind, f.reviewer, f.author, f.unit, f.item, f.detail) for f in report.flags],
    }
    out = {}
    for name, columns in COLUMNS.items():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows[name])
        out[name] = buffer.getvalue()
    return out


def write_csv(report: ScoreReport, folder: str | Path) -> list[Path]:
    """Write :func:`to_csv`'s files into ``folder`` (made if missing); returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in to_csv(report).items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _review_key(review: Review) -> tuple[object, ...]:
    """A total order of reviews, so that nothing depends on the order they come in."""
    return (
        review.author,
        review.unit,
        review.reviewer,
        sorted(review.scores.items()),
        review.comments,
        review.text_chars,
        review.helpful is None,
        review.helpful or 0,
    )


def _flag_key(flag: Flag) -> tuple[str, ...]:
    """Flags sorted by kind, then author, unit, reviewer and item."""
    return (flag.kind, flag.author, flag.unit, flag.reviewer, flag.item, flag.detail)


def _number(value: float | None, digits: int = 4) -> str:
    """``value`` rounded to ``digits`` decimals without trailing zeros; ``""`` for ``None``."""
    if value is None:
        return ""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
