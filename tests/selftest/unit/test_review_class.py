"""The class of the trial (tests/selftest/review_class.py) is what it says: 13 submissions, one
zip, every identity string in the student's own code, and code that is right or plausibly
wrong where the fixture says so."""

import ast
import zipfile

import pytest
import torch

from grader import ROOT
from tests.selftest.review_class import MODULE, ZIPPED, make_class

REFERENCE = (ROOT / "solutions" / "attention.py").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def the_class(tmp_path_factory):
    return make_class(tmp_path_factory.mktemp("class"))


def _module(source: str) -> dict:
    namespace: dict = {"__name__": "student_attention"}
    exec(compile(source, "attention.py", "exec"), namespace)
    return namespace


def test_thirteen_submissions_one_of_them_a_zip(the_class):
    assert len(the_class.students) == 13 and len(set(the_class.ids)) == 13
    on_disk = sorted(p.name for p in the_class.submissions.iterdir())
    assert on_disk == sorted(s.id + (".zip" if s.id == ZIPPED else "") for s in the_class.students)
    for student in the_class.students:
        ast.parse(student.source)
        if student.id == ZIPPED:
            with zipfile.ZipFile(student.path) as archive:
                assert archive.namelist() == [f"{ZIPPED}/{MODULE}.py"]
                assert archive.read(f"{ZIPPED}/{MODULE}.py").decode() == student.source
        else:
            assert (student.path / f"{MODULE}.py").read_text(encoding="utf-8") == student.source


def test_the_identity_is_in_the_code_to_be_hidden(the_class):
    for ident in ("jane_doe-20231234", "kim.minsu", "max_mean"):
        student = the_class.student(ident)
        found = {secret for _, secret in the_class.leaks(student.source)}
        assert set(student.forbidden) <= found | {ident}, (ident, set(student.forbidden) - found)
    jane = the_class.student("jane_doe-20231234").source
    for text in (
        "jdoe_debug",
        "janeAttention",
        "/tmp/jane_doe_debug.log",
        "@janedoe",
        "github.com/janedoe",
        "__author__",
    ):
        assert text in jane
    assert the_class.leaks("Does it work? Doesn't matter.") == []
    assert ("jane_doe-20231234", "jane") in the_class.leaks("x = janeAttention")


def test_sdpa_is_right_where_the_fixture_says_so(the_class):
    reference = _module(REFERENCE)["scaled_dot_product_attention"]
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, generator=generator, dtype=torch.float64) for _ in range(3))
    mask = torch.rand(2, 3, 3, generator=generator) > 0.4
    mask[0, 1] = False  # a query with every key masked
    want, want_weights = reference(q, k, v, mask)
    for student in the_class.students:
        sdpa = _module(student.source)["scaled_dot_product_attention"]
        try:
            got, weights = sdpa(q, k, v, mask)
            right = torch.allclose(got, want) and torch.allclose(weights, want_weights)
        except NotImplementedError:
            right = False
        assert right == student.passes_sdpa, student.id


def test_jane_forgot_her_debug_flag(the_class):
    causal_mask = _module(the_class.student("jane_doe-20231234").source)["causal_mask"]
    with pytest.raises(NameError, match="jdoe_debug"):
        causal_mask(3)


def test_a_roster_of_the_class(the_class, tmp_path):
    text = the_class.write_roster(tmp_path / "roster.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "id,name,email"
    assert "jane_doe-20231234,Jane Doe,jane.doe@example.edu" in text.splitlines()
