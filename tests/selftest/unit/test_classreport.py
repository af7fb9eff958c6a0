"""The class report (grader/classreport/): a graded batch read into counts, frequent mistakes,
limits, problems and grading time, and the HTML page written from it.

The batch folder is written with the grader's own ``Report.to_gradescope`` plus what
``grader batch`` adds (status, notes, ``execution_time``), and spoiled on purpose: corrupt
results, a folder without any, a conflict in notes.txt, a row not graded yet in grades.csv,
and a submission whose id and notes are HTML.
"""

import json
import re

import pytest

from grader import rubric
from grader.classreport import data, page, stats
from grader.cli import main
from grader.grading import scoring

SDPA, MHA, GATES, CELL = "attention.sdpa", "attention.mha", "lstm.gates", "lstm.cell"
SHAPE, SUMS, GRADS = "output shape", "weights sum to 1 over the keys", "gradients match F.scaled_dot_product_attention"
PROPERTIES = (SHAPE, SUMS, GRADS)
AXIS = "a softmax over the query axis (dim=-2) instead of the keys (dim=-1)"
SCALE = "forgetting to divide the scores by sqrt(d_k)"
HOSTILE = '<img src=x onerror="document.title=1">'  # a folder name cannot hold "/", so no </script>
SCRIPT = '<script>document.title="pwned"</script>'
CONFLICT = (
    "conflict: 'zed' (folder), 'zed.zip' (zip) all have the id 'zed'; "
    "none of them is graded: rename all but one and run the batch again"
)


def _records(exercise, failures):
    """Three public tests of ``exercise`` and one hidden; ``failures`` maps a property title to
    ``(status, mistake)`` (a mistake gives the message a hint line naming it)."""
    out = []
    for title in PROPERTIES:
        status, mistake = failures.get(title, ("passed", ""))
        message = "" if status == "passed" else f"{title} does not hold"
        if mistake:
            message += f"\n  smallest failing input: q: float32 (1, 2, 3)\n  hint: your code matches {mistake}"
        out.append(scoring.TestRecord(f"t::{exercise}::{title}", exercise, 1.0, status, message, title))
    out.append(scoring.TestRecord(f"t::{exercise}::secret", exercise, 1.0, "passed", "", "secret", hidden=True))
    return out


def write_result(out, ident, failures=None, *, status="graded", missing=(), notes=(), execution_time=None):
    """``out/<ident>/results.json`` as ``grader batch`` writes it: ``failures`` maps an exercise
    to its failing properties (see :func:`_records`), ``missing`` names modules not handed in."""
    failures = failures or {}
    results = [
        scoring.score_exercise(ex, [] if ex.module in missing else _records(ex.id, failures.get(ex.id, {})))
        for ex in rubric.EXERCISES
    ]
    result = scoring.Report(ident, results).to_gradescope()
    source = {"path": f"/subs/{ident}", "name": ident, "kind": "folder"}
    result["extra_data"].update({"submission": ident, "status": status, "notes": list(notes), "source": source})
    if execution_time is not None:
        result["execution_time"] = execution_time
    (out / ident).mkdir(parents=True)
    (out / ident / "results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory):
    """A graded class of six, four unreadable folders, a conflict and a row not graded yet."""
    out = tmp_path_factory.mktemp("classreport") / "out"
    write_result(out, "ana", execution_time=12.5)
    write_result(out, "ben", {SDPA: {SUMS: ("failed", AXIS), GRADS: ("failed", AXIS)}}, execution_time=30)
    write_result(out, "cho", {SDPA: {SUMS: ("failed", AXIS)}, MHA: {SHAPE: ("failed", SCALE)}}, execution_time=7.25)
    write_result(
        out,
        "dan",
        {SDPA: {SUMS: ("failed", SCALE)}, CELL: {GRADS: ("timeout", "")}},
        status="incomplete: missing elbo.py",
        missing=("elbo",),
    )
    stub = {title: ("not implemented", "") for title in PROPERTIES}
    write_result(
        out,
        "eve",
        {SDPA: stub, GATES: {SHAPE: ("crashed", "")}, CELL: {SHAPE: ("out of memory", "")}},
        execution_time=3.0,
    )
    write_result(out, HOSTILE, {MHA: {SUMS: ("failed", "<b>bold</b> & co")}}, notes=[SCRIPT], execution_time="fast")
    (out / "broken").mkdir()
    (out / "broken" / "results.json").write_text('{"score": 1, "tests": [', encoding="utf-8")
    (out / "empty").mkdir()
    (out / "listy").mkdir()
    (out / "listy" / "results.json").write_text("[1, 2]", encoding="utf-8")
    (out / "badtests").mkdir()
    (out / "badtests" / "results.json").write_text('{"score": 1, "tests": 5}', encoding="utf-8")
    (out / ".hidden").mkdir()  # never an id of grader batch: not read
    (out / "notes.txt").write_text(CONFLICT + "\n", encoding="utf-8")
    (out / "grades.csv").write_text(
        "id,attention,lstm,param_count,elbo,total,status,source\n"
        "ana,30,30,20,20,100,graded,ana\nfay,,,,,,not graded yet,fay\n",
        encoding="utf-8",
    )
    return out


@pytest.fixture(scope="module")
def batch(batch_dir):
    return data.read_batch(batch_dir)


@pytest.fixture(scope="module")
def summary(batch):
    return stats.summarize(batch)


def _exercise(summary, exercise):
    return next(e for e in summary.exercises if e.exercise.id == exercise)


def test_readable_submissions_and_their_scores(batch, summary):
    """Six submissions are read, sorted by id; the totals and module scores are the grader's."""
    assert [s.ident for s in batch.submissions] == [HOSTILE, "ana", "ben", "cho", "dan", "eve"]
    ana = batch.submissions[1]
    assert ana.score == 100 and ana.modules["attention"] == (30.0, 30.0) and ana.status == "graded"
    dan = batch.submissions[4]
    assert dan.modules["elbo"] == (0.0, 20.0) and dan.exercises["elbo.kl"].status == "missing"
    assert summary.total.count == 6 and summary.total.maximum == 100 and summary.total.full == 1
    sdpa = _exercise(summary, SDPA)
    assert sdpa.scores.maximum == rubric.BY_ID[SDPA].points and sdpa.scores.full == 2  # ana and the hostile one
    assert sdpa.statuses == (("not implemented", 1), ("failed", 3), ("passed", 2))


def test_most_frequent_mistakes_and_failing_properties(summary):
    """Counted once per submission (ben's two hints name one mistake), most frequent first; the
    stub's properties are not failing properties."""
    sdpa = _exercise(summary, SDPA)
    assert sdpa.mistakes == ((AXIS, 2), (SCALE, 1))
    assert sdpa.failed == ((SUMS, 3), (GRADS, 1))  # ben, cho, dan; ben (eve's stub is not counted)
    mha = _exercise(summary, MHA)
    assert mha.mistakes == (("<b>bold</b> & co", 1), (SCALE, 1))
    assert mha.failed == ((SHAPE, 1), (SUMS, 1))
    assert _exercise(summary, "attention.heads").mistakes == ()


def test_limits_per_submission_and_status(summary):
    """A timeout, a crash and running out of memory are listed per submission, with their exercises."""
    assert summary.limits == (
        stats.Limit("dan", "timeout", (CELL,)),
        stats.Limit("eve", "crashed", (GATES,)),
        stats.Limit("eve", "out of memory", (CELL,)),
    )
    assert summary.limit_counts == (("timeout", 1), ("crashed", 1), ("out of memory", 1))


def test_problems_unreadable_conflicts_missing_files_notes(batch):
    """Corrupt, absent and malformed results are unreadable (with why); notes.txt's conflict,
    grades.csv's row not graded yet, missing files and the sandbox's notes are listed."""
    assert [(p.kind, p.ident, p.detail) for p in batch.problems] == [
        ("unreadable", "badtests", "'tests' is not a list of objects"),
        ("unreadable", "broken", "not a JSON object (corrupt or unreadable)"),
        ("unreadable", "empty", "no results.json"),
        ("unreadable", "listy", "not a JSON object (corrupt or unreadable)"),
        ("conflict", "zed", CONFLICT),
        ("not graded yet", "fay", "in grades.csv, but no results: run the batch again to grade it"),
        ("missing files", "dan", "elbo.py"),
        ("note", HOSTILE, SCRIPT),
    ]


def test_grading_time_slowest_first_and_not_recorded(summary):
    """``execution_time`` read when it is a number of seconds; absent or a string: not recorded."""
    timing = summary.timing
    assert timing.recorded == (("ben", 30.0), ("ana", 12.5), ("cho", 7.25), ("eve", 3.0))
    assert timing.not_recorded == (HOSTILE, "dan")
    assert (timing.total, timing.mean, timing.median) == (52.75, 13.19, 9.88)


def test_distribution_counts():
    """Mean, median, full marks and zeros of a part worth 4 points."""
    d = stats.Distribution("x", 4.0, (0.0, 1.0, 4.0, 4.0, 2.5))
    assert (d.count, d.mean, d.median, d.full, d.zero) == (5, 2.3, 2.5, 2, 1)
    assert stats.frequent(["b", "a", "", "b"]) == (("b", 2), ("a", 1))


@pytest.mark.parametrize(
    "result, expected",
    [
        ({"score": 5, "execution_time": float("nan")}, None),
        ({"score": 5, "execution_time": -1}, None),
        ({"score": 5, "execution_time": True}, None),
        ({"score": 5, "execution_time": 2}, 2.0),
    ],
)
def test_execution_time_must_be_seconds(result, expected):
    assert data.execution_time_of(result) == expected


@pytest.mark.parametrize(
    "text, readable",
    [
        ('{"tests": [{"tags": ["attention", "attention.sdpa"], "extra_data": {"tests": 5}}]}', False),
        ('{"tests": [5]}', False),
        ('{"extra_data": "x"}', False),
        ('{"score": "NaN", "extra_data": {"modules": {"attention": "x"}, "notes": "x"}}', True),
        ('{"score": NaN, "max_score": true, "tests": []}', True),
        ('{"tests": [{"tags": ["attention", "attention.sdpa"], "score": "9", "extra_data": {"outcome": [1]}}]}', True),
        ('"just a string"', False),
        ("\xff\xfe", False),
    ],
)
def test_malformed_results_never_crash_the_report(tmp_path, text, readable):
    """Whatever a results.json holds, reading it gives a submission or an unreadable problem."""
    write_result(tmp_path, "good")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "results.json").write_text(text, encoding="utf-8")
    batch = data.read_batch(tmp_path)
    idents = [s.ident for s in batch.submissions]
    assert idents == (["good", "odd"] if readable else ["good"])
    assert any(p.kind == "unreadable" and p.ident == "odd" for p in batch.problems) is not readable
    stats.summarize(batch)  # and the summary of what was read


@pytest.fixture(scope="module")
def html(batch_dir):
    """The page ``python -m grader report OUT_DIR`` writes to its default place."""
    assert main(["report", str(batch_dir)]) == 0
    return (batch_dir / "report.html").read_text(encoding="utf-8")


def test_page_has_plots_tables_and_counts(html):
    """Seven inline SVG plots (total, modules, one per module's exercises, time), no script,
    nothing loaded from anywhere, and the counts in words."""
    assert html.count("<svg ") == 7
    for name in ("total", "modules", *(f"exercises-{m}" for m in rubric.MODULES), "time"):
        assert f'<figure id="plot-{name}"><svg ' in html
    assert "<script" not in html and "<metadata" not in html
    assert not re.findall(r"(?:src|href)=\"(?!#)", html)  # links inside the page only
    assert "<li>6 submissions graded; total score mean" in html
    assert "<li>2 submissions hit a limit or raised an error</li>" in html
    assert "<li>8 problems to look at (4 unreadable)</li>" in html
    assert f'<tr><td>{AXIS}</td><td class="n">2</td></tr>' in html
    assert "<tr><td>eve</td><td>out of memory</td><td>lstm.cell</td></tr>" in html
    assert '<tr><td>ben</td><td class="n">30</td></tr>' in html  # the slowest
    assert "<li>grading time: 52.8 s in all</li>" in html
    assert '<td class="n">not recorded</td>' in html


def test_page_escapes_what_submissions_wrote(html):
    """A hostile id, note and mistake text reach the page as text, never as markup."""
    assert HOSTILE not in html and SCRIPT not in html and "<b>bold" not in html
    assert "&lt;img src=x onerror=&#34;document.title=1&#34;&gt;" in html
    assert "&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html


def test_page_ids_are_unique_and_resolve(html):
    """The seven plots share no id, and every reference of a plot (clip paths, tick marks) is
    to an id defined once in the page."""
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)) > 100
    refs = set(re.findall(r"url\(#([^)]+)\)", html)) | set(re.findall(r'href="#([^"]+)"', html))
    assert refs and refs <= set(ids)


def test_page_is_deterministic(batch_dir, html, tmp_path, capsys):
    """The same OUT_DIR gives the same bytes (matplotlib's ids are salted, no date)."""
    again = tmp_path / "again.html"
    assert main(["report", str(batch_dir), "--out", str(again)]) == 0
    assert again.read_text(encoding="utf-8") == html
    assert "class report of 6 submissions (4 unreadable, 8 problems in all)" in capsys.readouterr().out


def test_page_without_grading_times_says_not_recorded(tmp_path):
    """Results from before ``execution_time`` was recorded: the page says so and draws no time plot."""
    write_result(tmp_path, "old")
    html = page.render(data.read_batch(tmp_path))
    assert "<li>grading time: not recorded</li>" in html and 'id="plot-time"' not in html
    assert html.count("<svg ") == 6


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "nowhere", "is not a folder"),
        (lambda d: d, "no results in"),
        (lambda d: (d / "x").mkdir() or d, "no <id>/results.json could be read (1 folder unreadable)"),
    ],
    ids=["missing", "empty", "only-unreadable"],
)
def test_cli_without_results_exits_2(tmp_path, capsys, make, message):
    """A missing OUT_DIR, an empty one and one with nothing readable: ``error: report: ...``, exit 2, no page."""
    folder = make(tmp_path)
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: report: ") and message in err
    assert not (tmp_path / "report.html").exists()


def test_number_format():
    assert [page.number(x) for x in (30.0, 12.7, 12.345, -0.001, 0)] == ["30", "12.7", "12.35", "0", "0"]
    assert page.plural(1, "problem") == "1 problem" and page.plural(0, "problem") == "0 problems"
