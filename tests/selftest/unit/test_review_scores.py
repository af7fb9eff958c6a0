"""Peer-review scores (grader/review/consensus.py) and the rubric file (grader/review/form.py).

The consensus of an item is the median of its reviewers' scores; a reviewer's agreement is the
mean of ``1 - |c - g| / p``; helpfulness is the mean rating left once tit-for-tat ratings (0 or
less on a review that scored the author below consensus) are dropped.  The worked example's
numbers are computed by hand in the comments, not by the code under test.
"""

import csv
import io
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.review import consensus, form
from grader.review.consensus import (
    AUTHOR_WITHOUT_REVIEWS,
    COLUMNS,
    EMPTY_REVIEW,
    FLAGGED_BY_STAFF,
    LARGE_DISAGREEMENT,
    LONE_TOP_SCORE,
    RATED_HARMFUL,
    Flag,
    Review,
    is_empty,
    score,
    to_csv,
)
from grader.review.form import Item, Rubric, RubricError

UNIT = "attention.sdpa"
#: Two items with different ranges: correctness 0..2 (p = 2), shapes 0..4 (p = 4).
RUBRIC = Rubric(
    (
        Item("correctness", "The code computes what the exercise asks", ("wrong", "mostly right", "right")),
        Item("shapes", "Every tensor's shape is stated or obvious", ("nowhere", "rarely", "often", "mostly", "always")),
    )
)


def review(reviewer, author, correctness=None, shapes=None, comments=1, text=50, helpful=None, unit=UNIT):
    """A review scoring the items given (the others left unfilled)."""
    scores = {k: v for k, v in (("correctness", correctness), ("shapes", shapes)) if v is not None}
    return Review(reviewer, author, unit, scores, comments, text, helpful)


def worked_example():
    """Three reviewers on ana, two on bo, one empty review of cy, nobody on di."""
    return [
        review("bo", "ana", 2, 3, comments=2, text=120, helpful=2),
        review("cy", "ana", 2, 4, comments=1, text=60, helpful=1),
        review("di", "ana", 0, 3, comments=0, text=40, helpful=-1),  # 0+3 < 2+3: below consensus
        review("ana", "bo", 1, 2, comments=1, text=50, helpful=1),  # 1+2 < 1.5+2: below, but rated +1
        review("cy", "bo", 2, 2, comments=0, text=30, helpful=-2),  # 2+2 > 1.5+2: above
        review("di", "cy", comments=0, text=0),
    ]


def test_worked_example_medians_agreement_helpfulness_and_flags():
    """CrowdGrader by hand: medians per item, agreement per reviewer, tit-for-tat dropped, flags."""
    report = score(worked_example(), RUBRIC, expected=[("di", UNIT)])

    # ana: correctness median(2, 2, 0) = 2, shapes median(3, 4, 3) = 3
    # bo:  correctness median(1, 2) = 1.5 (even count: the mean of the middle two), shapes median(2, 2) = 2
    # cy:  only an empty review, so no consensus
    assert [(c.author, c.item, c.consensus, c.n_reviews) for c in report.consensus] == [
        ("ana", "correctness", 2, 3),
        ("ana", "shapes", 3, 3),
        ("bo", "correctness", 1.5, 2),
        ("bo", "shapes", 2, 2),
        ("cy", "correctness", None, 0),
        ("cy", "shapes", None, 0),
    ]
    assert report.consensus_of("bo", UNIT, "correctness") == 1.5

    # agreement = mean of 1 - |c - g| / p over the items each reviewer scored
    # ana: on bo, correctness 1 - 0.5/2 = 0.75, shapes 1            -> 0.875
    # bo:  on ana, both at consensus                                  -> 1
    # cy:  on ana 1 and 1 - 1/4 = 0.75; on bo 1 - 0.5/2 = 0.75 and 1  -> 3.5 / 4 = 0.875
    # di:  on ana 1 - 2/2 = 0 and 1; the empty review adds nothing    -> 0.5
    # helpfulness: di's -1 on a below-consensus review is dropped; ana's +1 (below but positive)
    # and cy's -2 (above consensus) count
    assert [(r.reviewer, r.reviews, r.agreement, r.helpfulness, r.ratings_dropped) for r in report.reviewers] == [
        ("ana", 1, 0.875, 1.0, 0),
        ("bo", 1, 1.0, 2.0, 0),
        ("cy", 2, 0.875, -0.5, 0),
        ("di", 2, 0.5, None, 1),
    ]

    # di's 0 against ana's consensus 2 is |c - g| = 2 >= p/2 = 1; cy's 4 against 3 is 1 < 4/2
    assert report.flags == (
        Flag(AUTHOR_WITHOUT_REVIEWS, "", "cy", UNIT, "", "1 review, all empty"),
        Flag(AUTHOR_WITHOUT_REVIEWS, "", "di", UNIT, "", "no review"),
        Flag(EMPTY_REVIEW, "di", "cy", UNIT, "", "no scores and no line comments"),
        Flag(LARGE_DISAGREEMENT, "di", "ana", UNIT, "correctness", "gave 0, consensus 2 (levels 0..2)"),
        Flag(RATED_HARMFUL, "cy", "bo", UNIT, "", "the author rated it -2"),
    )


def test_a_lone_top_score_on_a_failing_solution_and_staff_flags_are_flagged():
    def top(reviewer, status, flags=()):
        return Review(reviewer, "eve", UNIT, {"correctness": 2, "shapes": 4}, 1, 50, None, status, flags)

    def low(reviewer, status):
        return Review(reviewer, "eve", UNIT, {"correctness": 0, "shapes": 1}, 1, 50, None, status)

    kinds = lambda reviews: [(f.kind, f.reviewer) for f in score(reviews, RUBRIC).flags if f.kind != LARGE_DISAGREEMENT]  # noqa: E731
    assert kinds([top("ana", "failed"), low("bo", "failed")]) == [(LONE_TOP_SCORE, "ana")]
    assert kinds([top("ana", "passed"), low("bo", "passed")]) == []  # the grader passed it: a top score is fair
    assert kinds([top("ana", "failed"), top("bo", "failed")]) == []  # not alone: staff see the agreement instead
    assert kinds([top("ana", "failed")]) == []  # one review: nothing to stand out from
    assert kinds([top("ana", "passed", ("tone",)), low("bo", "passed")]) == [(FLAGGED_BY_STAFF, "ana")]


def test_a_single_reviewer_agrees_with_themselves():
    """One reviewer per author makes the consensus their own score: agreement 1.0, not None."""
    report = score([review("bo", "ana", 0, 1)], RUBRIC)
    assert report.reviewer("bo").agreement == 1.0
    assert score([review("bo", "ana", comments=3, text=200)], RUBRIC).reviewer("bo").agreement is None


def test_half_the_range_is_the_disagreement_threshold():
    """On shapes (p = 4) a score 2 away from the consensus is flagged, 1 away (or 1.5) is not."""
    reviews = [review("a", "x", shapes=4), review("b", "x", shapes=4), review("c", "x", shapes=2)]
    flagged = [(f.reviewer, f.item) for f in score(reviews, RUBRIC).flags if f.kind == LARGE_DISAGREEMENT]
    assert flagged == [("c", "shapes")]
    reviews = [review("a", "x", shapes=4), review("b", "x", shapes=3)]  # median 3.5: 0.5 away
    assert not score(reviews, RUBRIC).flags


@pytest.mark.parametrize(
    ("scores", "comments", "text", "empty"),
    [
        ({}, 0, 500, True),  # long text but nothing filled and no line comment
        ({"shapes": 2}, 0, 19, True),  # a score, and too little text
        ({"shapes": 2}, 0, 20, False),
        ({}, 1, 0, False),  # a line comment is a review
        ({"shapes": 2}, 2, 5, False),
    ],
)
def test_an_empty_review_has_no_comments_and_no_scores_or_little_text(scores, comments, text, empty):
    """Empty: no line comments, and no scores or under 20 characters of text."""
    assert is_empty(Review("r", "a", UNIT, scores, comments, text)) is empty
    flags = score([Review("r", "a", UNIT, scores, comments, text)], RUBRIC).flags
    assert [(f.reviewer, f.author) for f in flags if f.kind == EMPTY_REVIEW] == ([("r", "a")] if empty else [])
    assert [f.author for f in flags if f.kind == AUTHOR_WITHOUT_REVIEWS] == (["a"] if empty else [])


def test_tit_for_tat_ratings_are_dropped_only_below_consensus():
    """A -2 (or a 0) on a review that scored the author below consensus is dropped; the same -2
    on a review at or above consensus counts, and so does a positive rating below consensus."""
    # consensus on ana: correctness median(0, 1, 2, 2, 2) = 2, shapes median(2, 3, 3, 4, 4) = 3 -> sum 5
    reviews = [
        review("low", "ana", 0, 3, helpful=-2),  # 3 < 5: dropped
        review("zero", "ana", 1, 2, helpful=0),  # 3 < 5: dropped
        review("fair", "ana", 2, 3, helpful=-2),  # 5 = 5: counts
        review("high", "ana", 2, 4, helpful=-2),  # 6 > 5: counts
        review("kind", "ana", 2, 4, helpful=2),  # 6 > 5: counts
    ]
    report = score(reviews, RUBRIC)
    got = {r.reviewer: (r.helpfulness, r.ratings_dropped) for r in report.reviewers}
    assert got == {"low": (None, 1), "zero": (None, 1), "fair": (-2.0, 0), "high": (-2.0, 0), "kind": (2.0, 0)}

    below_but_thanked = [*reviews[1:], review("low", "ana", 0, 3, helpful=1)]
    assert score(below_but_thanked, RUBRIC).reviewer("low").helpfulness == 1.0


def test_the_sum_compares_only_the_items_the_reviewer_filled():
    """A review that scored shapes at consensus and left correctness empty is not below consensus."""
    reviews = [review("a", "x", 2, 3), review("b", "x", 2, 3), review("c", "x", shapes=3, helpful=-2)]
    assert score(reviews, RUBRIC).reviewer("c").helpfulness == -2.0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (review("r", "a", correctness=3), "item 'correctness' scored 3, outside 0..2"),
        (Review("r", "a", UNIT, {"style": 1}, 1, 50), "item 'style' is not in the rubric"),
        (review("r", "a", 1, helpful=3), "rating 3 outside -2..+2"),
    ],
)
def test_reviews_that_do_not_fit_the_rubric_are_refused(bad, message):
    """A score outside the item's levels, an unknown item or a rating outside -2..+2 is a ValueError."""
    with pytest.raises(ValueError, match=message):
        score([bad], RUBRIC)
    with pytest.raises(ValueError, match="a second review"):
        score([review("r", "a", 1), review("r", "a", 2)], RUBRIC)


# -- properties -----------------------------------------------------------------------------

PEOPLE = ("ana", "bo", "cy", "di")
UNITS = ("attention.sdpa", "lstm.cell")
scores_st = st.fixed_dictionaries({}, optional={"correctness": st.integers(0, 2), "shapes": st.integers(0, 4)})
reviews_st = st.lists(
    st.builds(
        Review,
        reviewer=st.sampled_from(PEOPLE),
        author=st.sampled_from(PEOPLE),
        unit=st.sampled_from(UNITS),
        scores=scores_st,
        comments=st.integers(0, 3),
        text_chars=st.integers(0, 80),
        helpful=st.none() | st.integers(-2, 2),
    ),
    unique_by=lambda r: (r.reviewer, r.author, r.unit),
    max_size=20,
)


@settings(max_examples=60)
@given(reviews_st)
def test_consensus_lies_between_the_scores_given(reviews):
    """Each item's consensus lies between the lowest and highest score given, and counts them."""
    report = score(reviews, RUBRIC)
    for row in report.consensus:
        work = [r for r in reviews if (r.author, r.unit) == (row.author, row.unit)]
        scored = [r.scores[row.item] for r in work if row.item in r.scores]
        assert row.n_reviews == len(scored)
        if scored:
            assert min(scored) <= row.consensus <= max(scored)
        else:
            assert row.consensus is None


@settings(max_examples=60)
@given(reviews_st)
def test_agreement_is_between_0_and_1_and_ratings_are_all_accounted_for(reviews):
    """Agreement lies in [0, 1] (None only for a reviewer who scored nothing); every rating is
    either counted in helpfulness or dropped."""
    report = score(reviews, RUBRIC)
    for row in report.reviewers:
        mine = [r for r in reviews if r.reviewer == row.reviewer]
        assert row.reviews == len(mine)
        if any(r.scores for r in mine):
            assert 0.0 <= row.agreement <= 1.0
        else:
            assert row.agreement is None
        rated = [r.helpful for r in mine if r.helpful is not None]
        assert row.ratings_dropped <= sum(1 for h in rated if h <= 0)
        assert (row.helpfulness is None) == (row.ratings_dropped == len(rated))


@settings(max_examples=60)
@given(reviews_st, st.dictionaries(st.tuples(st.sampled_from(PEOPLE), st.sampled_from(UNITS)), scores_st))
def test_agreement_is_exactly_1_when_all_reviewers_agree(reviews, truth):
    """When every reviewer of a unit gives the same score on each item they fill, every
    agreement is exactly 1.0 and nobody is flagged for disagreement."""
    full = {"correctness": 1, "shapes": 2}
    agreeing = [
        Review(
            r.reviewer,
            r.author,
            r.unit,
            {k: {**full, **truth.get((r.author, r.unit), {})}[k] for k in r.scores},
            r.comments,
            r.text_chars,
            r.helpful,
        )
        for r in reviews
    ]
    report = score(agreeing, RUBRIC)
    assert all(row.agreement in (1.0, None) for row in report.reviewers)
    assert not [f for f in report.flags if f.kind == LARGE_DISAGREEMENT]


@settings(max_examples=60)
@given(st.data())
def test_the_report_does_not_depend_on_the_order_of_the_reviews(data):
    """Any permutation of the reviews gives the same report and the same CSV files."""
    reviews = data.draw(reviews_st)
    shuffled = data.draw(st.permutations(reviews))
    expected = data.draw(st.lists(st.tuples(st.sampled_from(PEOPLE), st.sampled_from(UNITS)), max_size=3))
    first = score(reviews, RUBRIC, expected)
    second = score(shuffled, RUBRIC, reversed(expected))
    assert first == second
    assert to_csv(first) == to_csv(second)


# -- CSV ------------------------------------------------------------------------------------


def test_csv_files_round_trip_through_dictreader(tmp_path):
    """Each file has its columns; the rows read back give the report's values."""
    report = score(worked_example(), RUBRIC, expected=[("di", UNIT)])
    files = to_csv(report)
    assert set(files) == {"consensus.csv", "reviewers.csv", "flags.csv"}
    read = {}
    for name, text in files.items():
        reader = csv.DictReader(io.StringIO(text))
        read[name] = list(reader)
        assert tuple(reader.fieldnames) == COLUMNS[name]

    assert [(r["author"], r["item"], r["consensus"], int(r["n_reviews"])) for r in read["consensus.csv"]] == [
        (c.author, c.item, "" if c.consensus is None else f"{c.consensus:g}", c.n_reviews) for c in report.consensus
    ]
    assert read["consensus.csv"][2]["consensus"] == "1.5"
    assert [
        (r["reviewer"], int(r["reviews"]), float(r["agreement"]), r["helpfulness"], int(r["ratings_dropped"]))
        for r in read["reviewers.csv"]
    ] == [("ana", 1, 0.875, "1", 0), ("bo", 1, 1.0, "2", 0), ("cy", 2, 0.875, "-0.5", 0), ("di", 2, 0.5, "", 1)]
    assert [Flag(**row) for row in read["flags.csv"]] == list(report.flags)

    paths = consensus.write_csv(report, tmp_path / "round1")
    assert {p.name: p.read_text(encoding="utf-8") for p in paths} == files


# -- the rubric file ------------------------------------------------------------------------


def rubric_text(*blocks):
    """A rubric file: ``blocks`` dedented and joined by blank lines."""
    return "\n".join(textwrap.dedent(block).strip("\n") + "\n" for block in blocks)


GOOD_A = """
    [[item]]
    id = "correctness"
    text = "The code computes what the exercise asks"
    levels = ["wrong", "mostly right", "right"]
    """
GOOD_B = """
    [[item]]
    id = "shapes"
    text = "Every tensor's shape is stated or obvious"
    levels = ["nowhere", "in most places", "everywhere"]
    """


def test_a_good_rubric_parses_in_file_order():
    """Items keep the file's order; levels become a tuple; ``max`` is the last index."""
    rubric = form.parse(rubric_text(GOOD_A, GOOD_B))
    assert [item.id for item in rubric.items] == ["correctness", "shapes"]
    assert rubric.by_id["shapes"].levels == ("nowhere", "in most places", "everywhere")
    assert rubric.by_id["shapes"].max == 2


# Line numbers: GOOD_A is lines 1-4, a blank line 5, the second block starts at line 6 (its id at 7);
# a third block starts at line 11.  tomllib's "end of document" is the last line.
@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (rubric_text(GOOD_A, '[[item]]\nid = "b"\ntext = bare words\nlevels = ["x", "y"]'), 8, "invalid TOML: Invalid"),
        (rubric_text(GOOD_A, '[[item]]\nid = "b"\nlevels = ["x", "y"'), 8, "invalid TOML: Unclosed array"),
        ("# nothing here\n", 1, "no items"),
        ("item = []\n", 1, "no items"),
        ('title = "x"\n' + rubric_text(GOOD_A), 1, "unknown key 'title'"),
        (rubric_text(GOOD_A, '[[item]]\ntext = "t"\nlevels = ["x", "y"]'), 6, "item 2 has no id"),
        (rubric_text(GOOD_A, '[[item]]\nid = "b"\nlevels = ["x", "y"]'), 7, "item 'b' has no text"),
        (rubric_text(GOOD_A, '[[item]]\n\nid = "b"\ntext = "t"'), 8, "item 'b' has no levels"),
        (rubric_text(GOOD_A, GOOD_B, GOOD_A), 12, "item 'correctness': duplicate id (item 1 has it too)"),
        (rubric_text(GOOD_A, '[[item]]\nid = "Shapes"\ntext = "t"\nlevels = ["x", "y"]'), 7, "must match [a-z]"),
        (rubric_text(GOOD_A, '[[item]]\nid = "2d"\ntext = "t"\nlevels = ["x", "y"]'), 7, "must match [a-z]"),
        (rubric_text(GOOD_A, '[[item]]\nid = "b"\ntext = "t"\nlevels = ["only"]'), 9, "has 1 level; an item needs"),
        (rubric_text(GOOD_A, '[[item]]\nid = "b"\ntext = "t"\nlevels = ["x", 2]'), 9, "levels must be strings"),
        (rubric_text(GOOD_A, '[[item]]\nid = "b"\ntext = "t"\nlevels = "x, y"'), 9, "levels must be a list"),
        (rubric_text(GOOD_A, '[[item]]\nid = "b"\ntext = "t"\nlevels = ["x", "x"]'), 9, "level 'x' is repeated"),
        (rubric_text(GOOD_A, '[[item]]\nid = "b"\ntext = ""\nlevels = ["x", "y"]'), 8, "text must be a non-empty"),
        (
            rubric_text(GOOD_A, '[[item]]\nid = "bug"\nkind = "locate"\ntext = "t"\nlevels = ["x", "y"]'),
            8,
            "unknown key 'kind'",
        ),
        (
            rubric_text(GOOD_A, '[[item]]\nid = "b"\ntext = "t"\nlevels = ["x", "y"]\nweight = 2\nkind = "x"'),
            10,
            "unknown keys 'weight', 'kind'",
        ),
        (
            'item = [\n  {id = "a", text = "t", levels = ["x", "y"]},\n'
            '  {id = "a", text = "u", levels = ["x", "y"]},\n]',
            3,
            "duplicate id",
        ),
    ],
)
def test_rubric_errors_name_the_line_and_the_reason(text, line, reason):
    """Every kind of mistake raises a RubricError ``file:line: reason`` at the line that holds it."""
    with pytest.raises(RubricError) as caught:
        form.parse(text, name="review/sample.toml")
    error = caught.value
    assert (error.file, error.line) == ("review/sample.toml", line), str(error)
    assert reason in error.reason
    assert str(error) == f"review/sample.toml:{line}: {error.reason}"


def test_load_names_the_file(tmp_path):
    """:func:`form.load` reads a file and its errors name that file."""
    path = tmp_path / "rubric.toml"
    path.write_text(rubric_text(GOOD_A, GOOD_A), encoding="utf-8")
    with pytest.raises(RubricError) as caught:
        form.load(path)
    assert str(caught.value).startswith(f"{path}:7: item 'correctness': duplicate id")
    path.write_text(rubric_text(GOOD_B), encoding="utf-8")
    assert [item.id for item in form.load(path).items] == ["shapes"]


def test_the_shipped_rubric_loads():
    """``review/rubric.toml`` parses: 4 or 5 items of three parallel levels each, usable by :func:`score`."""
    rubric = form.load()
    assert form.DEFAULT.name == "rubric.toml" and form.DEFAULT.parent.name == "review"
    assert 4 <= len(rubric.items) <= 5
    assert {item.id for item in rubric.items} >= {"correctness", "shapes"}
    assert all(len(item.levels) == 3 for item in rubric.items)
    full = {item.id: item.max for item in rubric.items}
    report = score([Review("bo", "ana", UNIT, full, 1, 50)], rubric)
    assert [row.consensus for row in report.consensus] == [2] * len(rubric.items)
