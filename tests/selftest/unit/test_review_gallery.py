"""The gallery of stacks (grader/review/gallery.py) and the code it stacks on (grader/review/normalize.py).

Two solutions stack when their normalized code and their behaviour are the same: renamed
copies stack, a different technique or a catalogued mistake never does, and the same code
with another grader status makes another card.  The student code below is written out as
students write it; the batch folder is written with the grader's own ``Report.to_gradescope``.
"""

import builtins
import json
import keyword
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader import ROOT, mistakes, rubric
from grader.grading import scoring
from grader.grading.scoring import Report, score_exercise
from grader.review.gallery import Solution, behaviour_of, gallery, solutions_from_batch
from grader.review.normalize import approach, exercise_source, normalize, stack_key

SDPA = "attention.sdpa"

# ---- realistic student code -----------------------------------------------------------------------

EINSUM_STUDENT = """
import math

import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None):
    # q: (..., Lq, d), k: (..., Lk, d)
    d = q.shape[-1]
    logits = torch.einsum("...id,...jd->...ij", q, k) / math.sqrt(d)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
        empty = ~mask.any(dim=-1, keepdim=True)  # rows with every key masked
        logits = logits.masked_fill(empty, 0.0)
    attn = F.softmax(logits, dim=-1)
    if mask is not None:
        attn = attn.masked_fill(~mask, 0.0)
    out = torch.einsum("...ij,...jd->...id", attn, v)
    return out, attn
"""

MATMUL_STUDENT = '''
import math

import torch


def scaled_dot_product_attention(query, key, value, mask=None):
    """Attention with matrix products."""
    scale = 1.0 / math.sqrt(query.size(-1))
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale
    if mask is not None:
        scores = torch.where(mask, scores, float("-inf"))
        scores = torch.where(mask.any(dim=-1, keepdim=True), scores, 0.0)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = torch.where(mask, weights, 0.0)
    return torch.matmul(weights, value), weights
'''

MUL_SUM_STUDENT = """
import torch


def scaled_dot_product_attention(q, k, v, mask=None):
    scores = (q.unsqueeze(-2) * k.unsqueeze(-3)).sum(-1) / q.size(-1) ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(-1)
    return (weights.unsqueeze(-1) * v.unsqueeze(-3)).sum(-2), weights
"""

LOOP_STUDENT = """
import torch


def scaled_dot_product_attention(q, k, v, mask=None):
    rows = []
    for i in range(q.size(-2)):
        s = (q[..., i : i + 1, :] * k).sum(-1) / q.size(-1) ** 0.5
        rows.append(s)
    scores = torch.stack(rows, dim=-2)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
"""

# Placeholders are the names a renaming may change: the parameters and locals of both functions.
RENAMED = ("q", "k", "v", "mask", "d_k", "scores", "weights", "s", "m", "empty")

ORIGINAL = '''
import math

import torch


def _fill_empty_rows({s}, {m}):
    """Give rows whose keys are all masked finite scores (softmax would give NaN)."""
    {empty} = ~{m}.any(dim=-1, keepdim=True)
    return {s}.masked_fill({empty}, 0.0)


def scaled_dot_product_attention({q}, {k}, {v}, {mask}=None):
    """Scaled dot-product attention, exercise attention.sdpa."""
    {d_k} = {q}.size(-1)  # the key size
    {scores} = {q} @ {k}.transpose(-2, -1) / math.sqrt({d_k})
    if {mask} is not None:
        # masked keys get -inf
        {scores} = {scores}.masked_fill(~{mask}, float("-inf"))
        {scores} = _fill_empty_rows({scores}, {mask})
    {weights} = torch.softmax({scores}, dim=-1)
    if {mask} is not None:
        {weights} = {weights}.masked_fill(~{mask}, 0.0)
    return {weights} @ {v}, {weights}
'''

# The same code in another layout, with other comments, a type annotation and no docstrings.
REFORMATTED = """
import math
import torch
def _fill_empty_rows({s}, {m}):  # {comment}
    {empty}=~{m}.any(dim = -1, keepdim = True)
    return ({s}.masked_fill({empty}, 0.0))
def scaled_dot_product_attention({q}: torch.Tensor, {k}, {v}, {mask} = None) -> tuple:
    {d_k}: int = {q}.size(-1)
    {scores} = ({q} @ {k}.transpose(-2, -1)) / math.sqrt(
        {d_k}
    )
    if {mask} is not None:
        {scores} = {scores}.masked_fill(~{mask}, float('-inf'))   # {comment}
        {scores} = _fill_empty_rows({scores}, {mask})
    {weights} = torch.softmax({scores}, dim=-1)
    if {mask} is not None:
        {weights} = {weights}.masked_fill(~{mask}, 0.0)
    return ({weights} @ {v}), {weights}
"""

#: Names a renaming must not take: globals and functions the code uses, and ours.
TAKEN = {"torch", "math", "F", "nn", "np", "scaled_dot_product_attention", "_fill_empty_rows", "tuple", "int"}

FORBIDDEN = TAKEN | set(dir(builtins)) | set(keyword.kwlist) | set(keyword.softkwlist)
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
identifiers = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(LETTERS),
    st.text(st.sampled_from(LETTERS + "0123456789"), max_size=10),
).filter(lambda n: n not in FORBIDDEN and not n.startswith("__"))
comments = st.text(st.sampled_from("abcdefghij klmnop-_:.,"), max_size=30)


def solution(author, code, status="passed", score=10.0, failed=(), mistake=""):
    """A Solution of attention.sdpa cut from ``code`` (a whole module)."""
    return Solution(author, exercise_source(code, SDPA), status, score, 10.0, tuple(failed), mistake)


# ---- stacking renamed copies --------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(identifiers, min_size=len(RENAMED), max_size=len(RENAMED), unique=True), comments)
def test_renamed_copies_land_in_one_card(names, comment):
    """Rename every parameter and local of a solution and of its helper, change its comments,
    docstrings, annotations and layout: the two copies normalize the same and make one card."""
    original = ORIGINAL.format(**{n: n for n in RENAMED})
    renamed = REFORMATTED.format(comment=comment, **dict(zip(RENAMED, names)))
    assert normalize(exercise_source(renamed, SDPA)) == normalize(exercise_source(original, SDPA))
    cards = gallery(SDPA, [solution("s2", renamed), solution("s1", original)])
    assert [(c.size, c.authors) for c in cards] == [(2, ["s1", "s2"])]
    assert "_fill_empty_rows" in cards[0].representative  # the helper travels with its caller


SCOPES = """
def f({a}, *{rest}, {key}=1, **{extra}):
    {total} = sum({item} * {key} for {item} in {rest})
    {scale} = lambda {x}: {x} * {a}
    def {inner}({y}):
        nonlocal {total}
        {total} += {y}
        return {total}
    try:
        {got} = {inner}({scale}({total}))
    except ValueError as {err}:
        {got} = str({err})
    with open({a}) as {fh}:
        {got} = [{line} for {line} in {fh} if {line}]
    return {got}, {extra}, f, len
"""
SCOPE_NAMES = ("a", "rest", "key", "extra", "total", "item", "scale", "x", "inner", "y", "got", "err", "fh", "line")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(identifiers.filter(lambda n: n not in ("f", "len", "str", "open")), min_size=14, max_size=14, unique=True)
)
def test_renaming_follows_python_scopes(names):
    """Parameters of every kind, a generator, a lambda, a nested function with ``nonlocal``,
    ``except ... as`` and ``with ... as`` names are renamed consistently; the function's own
    name and the builtins are kept."""
    original = SCOPES.format(**{n: n for n in SCOPE_NAMES})
    renamed = SCOPES.format(**dict(zip(SCOPE_NAMES, names)))
    assert normalize(renamed) == normalize(original)
    text = normalize(original)
    assert "def f(" in text and "len" in text and "sum(" in text
    assert not set(SCOPE_NAMES) & set(text.replace("(", " ").replace(")", " ").replace(",", " ").split())


def test_a_renaming_that_changes_the_meaning_does_not_stack():
    """Swapping which name is used where (not a renaming) changes the normalized code."""
    original = ORIGINAL.format(**{n: n for n in RENAMED})
    swapped = original.replace("q @ k", "k @ q")
    assert swapped != original
    assert normalize(exercise_source(swapped, SDPA)) != normalize(exercise_source(original, SDPA))


# ---- approaches -----------------------------------------------------------------------------------


def test_einsum_and_matmul_solutions_make_two_cards_with_different_approaches():
    """The same behaviour, two techniques: two stacks, labelled einsum and matmul."""
    cards = gallery(SDPA, [solution("ann", EINSUM_STUDENT), solution("ben", MATMUL_STUDENT)])
    assert len(cards) == 2
    assert {c.authors[0]: c.approach for c in cards} == {"ann": "einsum", "ben": "matmul"}
    assert stack_key(exercise_source(EINSUM_STUDENT, SDPA)) != stack_key(exercise_source(MATMUL_STUDENT, SDPA))


@pytest.mark.parametrize(
    "code, label",
    [
        (EINSUM_STUDENT, "einsum"),
        (MATMUL_STUDENT, "matmul"),
        (MUL_SUM_STUDENT, "mul-sum"),
        (LOOP_STUDENT, "matmul+loop"),
        ("def f(q, k):\n    return torch.bmm(q, k)\n", "matmul"),
        ("from torch import einsum\ndef f(q, k):\n    return einsum('ij,jk->ik', q, k) @ k\n", "einsum+matmul"),
        ("def f(x):\n    for name in ('a', 'b'):\n        x = x + 1\n    return x\n", ""),
        ("def f(:\n", ""),
    ],
    ids=["einsum", "matmul", "mul-sum", "loop", "bmm", "einsum-import", "literal-loop", "syntax-error"],
)
def test_approach_labels(code, label):
    """Each label from its calls and operators, joined in a fixed order; a loop over a literal is no loop."""
    assert approach(code) == label


# ---- synonyms and mistakes --------------------------------------------------------------------------


def body(expr, imports="import math\nimport torch\nimport torch.nn.functional as F\n"):
    """A module whose one function returns ``expr`` of its parameters ``x, y, m, d``."""
    return f"{imports}\n\ndef f(x, y, m, d):\n    return {expr}\n"


SYNONYMS = [
    ("x @ y", "torch.matmul(x, y)", "x.matmul(y)"),
    ("x.mT", "x.transpose(-2, -1)", "x.transpose(-1, -2)", "x.swapaxes(-2, -1)", "torch.transpose(x, -1, -2)"),
    ("x.masked_fill(~m, d)", "torch.where(m, x, d)", "x.masked_fill(m.logical_not(), d)"),
    ("x.masked_fill(m, d)", "torch.where(~m, x, d)", "x.masked_fill(mask=m, value=d)"),
    ("~~m", "m"),
    (
        "torch.softmax(x, dim=-1)",
        "F.softmax(x, dim=-1)",
        "x.softmax(dim=-1)",
        "x.softmax(-1)",
        "torch.nn.functional.softmax(x, -1)",
        "torch.softmax(x, -1)",
        "torch.nn.Softmax(dim=-1)(x)",
    ),
    ("math.sqrt(d)", "d ** 0.5", "d ** (1 / 2)"),
    ("x.size(-1)", "x.shape[-1]", "x.size()[-1]", "x.size(dim=-1)"),
    ('float("-inf")', "-float('inf')", "-math.inf", "-torch.inf", "float('-Inf')"),
    ("x.any(dim=-1, keepdim=True)", "x.any(keepdim=True, dim=-1)"),
]


@pytest.mark.parametrize("forms", SYNONYMS, ids=lambda forms: forms[0])
def test_synonyms_normalize_equal(forms):
    """Every form of a synonym gives the same normalized code."""
    assert len({normalize(body(form)) for form in forms}) == 1, [normalize(body(form)) for form in forms]


@pytest.mark.parametrize(
    "one, other",
    [
        ("x @ y", "y @ x"),
        ("x.mT", "x.transpose(1, 2)"),
        ("x.masked_fill(~m, d)", "x.masked_fill(m, d)"),
        ("torch.softmax(x, dim=-1)", "torch.softmax(x, dim=-2)"),
        ("torch.softmax(x, dim=-1)", "torch.log_softmax(x, dim=-1)"),
        ("math.sqrt(d)", "d"),
        ("x.size(-1)", "x.size(-2)"),
        ('float("-inf")', 'float("inf")'),
    ],
)
def test_near_synonyms_stay_apart(one, other):
    """What only looks like a synonym is not rewritten to one (the synonym test can fail)."""
    assert normalize(body(one)) != normalize(body(other))


def test_import_aliases_normalize_equal():
    """``import torch.nn.functional as F`` and ``as fn`` (or ``from torch.nn import functional``) are one import."""
    forms = [
        body("F.relu(x) + F.softmax(x, dim=-1)", "import torch.nn.functional as F"),
        body("fn.relu(x) + fn.softmax(x, dim=-1)", "import torch.nn.functional as fn"),
        body("functional.relu(x) + functional.softmax(x, dim=-1)", "from torch.nn import functional"),
        body("relu(x) + torch.softmax(x, dim=-1)", "import torch\nfrom torch.nn.functional import relu"),
    ]
    assert len({normalize(form) for form in forms}) == 1
    # a function of another imported module is no tensor method: scipy.special.softmax stays
    assert "scipy.special.softmax(v0)" in normalize(body("scipy.special.softmax(x)", "import scipy.special"))
    assert normalize(body("F.relu(x)", "import torch.nn.functional as F")) != normalize(
        body("F.relu(x)", "import torch.nn.functional as F\nimport mylib as F")
    )


def test_every_catalogued_mistake_normalizes_apart_from_the_reference():
    """No mistake of grader/mistakes/*.toml is a synonym of the reference: the gallery never
    stacks one with the right answer, even with the same behaviour."""
    assert [m for m in mistakes.load("attention") if m.exercise == SDPA and not m.correct], "no sdpa mistakes"
    same = []
    for mutant in mistakes.load():
        if mutant.correct:
            continue
        reference = (ROOT / "solutions" / f"{mutant.module}.py").read_text(encoding="utf-8")
        if normalize(exercise_source(mutant.source(), mutant.exercise)) == normalize(
            exercise_source(reference, mutant.exercise)
        ):
            same.append(mutant.id)
    assert not same, f"normalize merges these mistakes with the reference: {same}"


def test_a_catalogued_mistake_gets_its_own_card():
    """The reference and the sdpa mistakes, all given the same behaviour: one card each."""
    reference = (ROOT / "solutions" / "attention.py").read_text(encoding="utf-8")
    wrong = [m for m in mistakes.load("attention") if m.exercise == SDPA and not m.correct]
    sols = [solution("ref", reference)] + [solution(m.id, m.source()) for m in wrong]
    cards = gallery(SDPA, sols)
    assert len(cards) == len(sols)
    assert all(c.size == 1 for c in cards)


# ---- behaviour and ordering -----------------------------------------------------------------------


def test_behaviour_splits_a_stack():
    """The same code that passed for two students and timed out for one: two cards, the
    larger first; the same code with another failed property or mistake: more cards."""
    sols = [
        solution("a1", MATMUL_STUDENT),
        solution("a2", MATMUL_STUDENT),
        solution("a3", MATMUL_STUDENT, status="timeout", score=0.0),
        solution("a4", MATMUL_STUDENT, status="failed", score=5.0, failed=["masked keys get weight 0"]),
        solution("a5", MATMUL_STUDENT, status="failed", score=5.0, failed=["masked keys get weight 0"], mistake="x"),
    ]
    cards = gallery(SDPA, sols)
    assert [(c.size, c.status, c.authors) for c in cards][:1] == [(2, "passed", ["a1", "a2"])]
    assert sorted(tuple(c.authors) for c in cards[1:]) == [("a3",), ("a4",), ("a5",)]
    assert len({c.key.split("-")[0] for c in cards}) == 1  # one code stack ...
    assert len({c.key for c in cards}) == 4  # ... four behaviours
    timeout = next(c for c in cards if c.status == "timeout")
    assert (timeout.score, timeout.max_score, timeout.failed) == (0.0, 10.0, ())


def test_cards_are_sorted_and_do_not_depend_on_the_input_order():
    """Largest first, then passing before failing, then key; the representative is the most
    common raw text (ties: the smallest author id)."""
    spaced = MATMUL_STUDENT.replace("scale = 1.0", "scale =  1.0")  # same stack, another raw text
    sols = [
        solution("z9", spaced),
        solution("b2", MATMUL_STUDENT),
        solution("c3", MATMUL_STUDENT),
        solution("a1", spaced),
        solution("y8", spaced),
        solution("f1", EINSUM_STUDENT, status="failed", score=3.0, failed=["weights sum to 1"]),
        solution("e1", EINSUM_STUDENT),
    ]
    cards = gallery(SDPA, sols)
    assert [(c.size, c.status) for c in cards] == [(5, "passed"), (1, "passed"), (1, "failed")]
    assert cards[0].representative == exercise_source(spaced, SDPA)  # 3 of 5 wrote this text
    assert cards[0].authors == ["a1", "b2", "c3", "y8", "z9"]
    assert gallery(SDPA, sols[::-1]) == cards
    tie = gallery(SDPA, [solution("b", MATMUL_STUDENT), solution("a", spaced)])
    assert tie[0].representative == exercise_source(spaced, SDPA)  # one each: author "a" wins


# ---- exercise_source ------------------------------------------------------------------------------

HELPERS = """
import numpy as np
import torch
import torch.nn.functional as fn


def _unused(x):
    return x


def _scale(x):
    return x / x.size(-1) ** 0.5


@torch.no_grad()
def _debug(x):
    return x


def _scores(q, k):
    _debug(q)
    return _scale(q) @ k.mT


def causal_mask(length, device=None):
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is None:
        mask = causal_mask(s.size(-1))
    w = fn.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)
    return w @ v, w
"""


def test_exercise_source_pulls_the_helpers_the_student_calls():
    """The exercise's function with the helpers it calls, transitively (decorators included),
    and the imports they use, in file order; unrelated code and other exercises stay out."""
    text = exercise_source(HELPERS, SDPA)
    order = ["import torch\n", "import torch.nn.functional as fn", "def _scale", "@torch.no_grad()", "def _scores("]
    order.append("def scaled_dot_product_attention")
    positions = [text.find(piece) for piece in order]
    assert -1 not in positions and positions == sorted(positions), text
    assert "_unused" not in text and "def causal_mask" not in text and "numpy" not in text
    assert exercise_source(HELPERS, "attention.causal_mask").strip().endswith(".tril()")
    assert exercise_source(HELPERS, "attention.mha") == ""  # not written: skipped
    assert exercise_source("def scaled_dot_product_attention(:\n", SDPA) == ""
    # a form feed or a line separator in a comment is no line break for the parser: lines stay aligned
    odd = HELPERS.replace("import numpy as np", "import numpy as np  # \x0c \u2028")
    assert exercise_source(odd, SDPA) == exercise_source(HELPERS, SDPA)
    with pytest.raises(KeyError):
        exercise_source(HELPERS, "attention.nope")


def test_exercise_source_of_a_class_and_of_two_names():
    """A class exercise (its methods) and an exercise covering two names."""
    reference = (ROOT / "solutions" / "attention.py").read_text(encoding="utf-8")
    mha = exercise_source(reference, "attention.mha")
    assert "class MultiHeadAttention" in mha and "def forward" in mha and "def split_heads" not in mha
    heads = exercise_source(reference, "attention.heads")
    assert heads.index("def split_heads") < heads.index("def merge_heads")
    assert normalize(exercise_source(HELPERS, SDPA)).count("def ") == 4  # _debug, _scale, _scores, sdpa


# ---- reading a graded batch -----------------------------------------------------------------------

HINT = "dividing the scores by d_k instead of sqrt(d_k)"


def records(exercise, passed, failed_message="", hidden_failed=False):
    """Test records of ``exercise``: two public value tests, the second passed or failed with
    ``failed_message``, and one hidden test."""
    second = "passed" if passed else "failed"
    return [
        scoring.TestRecord(f"t::{exercise}::shape", exercise, 1.0, "passed", "", "output shape"),
        scoring.TestRecord(
            f"t::{exercise}::weights", exercise, 1.0, second, failed_message, "weights sum to 1 over the keys"
        ),
        scoring.TestRecord(
            f"t::{exercise}::secret", exercise, 1.0, "failed" if hidden_failed else "passed", "", "secret", hidden=True
        ),
    ]


def write_result(batch, ident, report_results, source=None, status="graded"):
    """``batch/<ident>/results.json`` as ``grader.grading.batch.grade_one`` writes it."""
    result = Report(ident, report_results).to_gradescope()
    extra = result.setdefault("extra_data", {})
    extra.update({"submission": ident, "status": status, "notes": [], "source": source, "files_sha256": None})
    (batch / ident).mkdir(parents=True)
    (batch / ident / "results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def test_solutions_from_batch(tmp_path):
    """Behaviour from results.json, code from the submission folder; a zip that cannot be read,
    a link, a missing file, a non-UTF-8 file and a rejected submission keep their status with no
    code (a readable zip, nested folders and notebooks: test_review_shapes.py)."""
    batch, subs = tmp_path / "out", tmp_path / "subs"
    subs.mkdir()
    ex = rubric.BY_ID[SDPA]
    passed = score_exercise(ex, records(SDPA, True))
    wrong = "\n".join(
        [
            "weights sum to 1 over the keys",
            "  smallest failing input: q: float32 (1, 2, 3)",
            f"  hint: your code matches {HINT}",
        ]
    )
    failed = score_exercise(ex, records(SDPA, False, wrong, hidden_failed=True))
    other = score_exercise(rubric.BY_ID["attention.causal_mask"], records("attention.causal_mask", True))

    def folder(name, files):
        (subs / name).mkdir()
        for file, text in files.items():
            (subs / name / file).parent.mkdir(exist_ok=True)
            (subs / name / file).write_bytes(text if isinstance(text, bytes) else text.encode())
        return {"path": str(subs / name), "name": name, "kind": "folder"}

    write_result(batch, "ann", [passed, other], folder("ann", {"attention.py": EINSUM_STUDENT}))
    bad = EINSUM_STUDENT.replace("/ math.sqrt(d)", "/ d")
    # "bob x" is not a safe id: the batch names it bob_x~<digest> and records the entry's name
    bob_source = folder("bob x", {"attention.py": bad, "old/attention.py": EINSUM_STUDENT})
    write_result(batch, "bob_x~0123456789", [failed], bob_source)
    write_result(batch, "cat", [passed], {"path": str(subs / "cat.zip"), "name": "cat.zip", "kind": "zip"})
    (subs / "cat.zip").write_bytes(b"PK\x03\x04 not really")
    write_result(batch, "dan", [], folder("dan", {}), status="rejected: no attention.py found")
    write_result(batch, "eve", [passed], folder("eve", {"attention.py": b"x = '\xff'\n"}))
    write_result(batch, "fay", [passed], folder("fay", {}))
    os.symlink(subs / "ann" / "attention.py", subs / "fay" / "attention.py")
    write_result(batch, "gus", [other], folder("gus", {"attention.py": MATMUL_STUDENT}))
    (batch / "hal").mkdir()
    (batch / "hal" / "results.json").write_text("{not json")
    (batch / "grades.csv").write_text("id\n")

    sols = {s.author: s for s in solutions_from_batch(batch, subs, SDPA)}
    assert sorted(sols) == ["ann", "bob_x~0123456789", "cat", "dan", "eve", "fay", "gus"]
    ann, bob = sols["ann"], sols["bob_x~0123456789"]
    assert ann.code == exercise_source(EINSUM_STUDENT, SDPA) and ann.code
    assert (ann.status, ann.score, ann.max_score, ann.failed, ann.mistake) == ("passed", 10.0, 10.0, (), "")
    assert bob.code == exercise_source(bad, SDPA) and "/ d\n" in bob.code  # the top-level file, not old/
    assert (bob.status, bob.failed, bob.mistake) == ("failed", ("weights sum to 1 over the keys",), HINT)
    assert bob.score == failed.score and bob.max_score == 10.0 and bob.score < 10.0
    assert "secret" not in bob.failed  # a hidden test's title is not shown to peers
    assert [(sols[i].code, sols[i].status) for i in ("cat", "eve", "fay")] == [("", "passed")] * 3
    assert (sols["dan"].code, sols["dan"].status, sols["dan"].score) == ("", "rejected", 0.0)
    assert (sols["gus"].status, sols["gus"].max_score) == ("missing", 10.0)  # graded without sdpa

    cards = gallery(SDPA, list(sols.values()))
    by_author = {a: c for c in cards for a in c.authors}
    assert by_author["bob_x~0123456789"].mistake == HINT
    assert by_author["ann"] is not by_author["bob_x~0123456789"]
    assert by_author["cat"] is by_author["eve"] is by_author["fay"]  # no code, same behaviour


def test_behaviour_of_the_hidden_part():
    """A public pass with a failed hidden test is a failure worth less than full marks."""
    result = Report("s", [score_exercise(rubric.BY_ID[SDPA], records(SDPA, True, hidden_failed=True))]).to_gradescope()
    status, score, max_score, failed, mistake = behaviour_of(result, SDPA)
    assert (status, max_score, failed, mistake) == ("failed", 10.0, (), "")
    assert 0 < score < 10.0
    assert behaviour_of({"tests": [], "extra_data": {"status": "error: boom"}}, SDPA)[0] == "error"
