"""The catalog of mistakes (grader/mistakes/__init__.py): loading the TOML entries, the
trivial entries, and the rule that names at most one mistake.  Catalogs are written to a
temporary folder; nothing is graded."""

import textwrap
import tomllib

import pytest
import torch

from grader import mistakes, rubric
from grader.mistakes import TRIVIAL_KINDS, CatalogError, Mutant, load, precise, trivial


@pytest.fixture
def catalog(tmp_path, monkeypatch):
    """A function writing ``<module>.toml`` into an empty catalog folder that :func:`load` reads."""
    monkeypatch.setattr(mistakes, "MISTAKES_DIR", tmp_path)
    load.cache_clear()

    def write(module, text):
        (tmp_path / f"{module}.toml").write_text(textwrap.dedent(text), encoding="utf-8")

    yield write
    load.cache_clear()


def test_load_reads_entries_in_file_order(catalog):
    """Each ``[[mutant]]`` becomes a :class:`Mutant` of its module, in file order: one
    ``find``/``replace`` or several ``patches``, ``correct`` false unless set."""
    catalog(
        "lstm",
        """
        [[mutant]]
        id = "gates_swapped"
        exercise = "lstm.gates"
        mistake = "swapping the input and forget gates"
        find = "i, f"
        replace = "f, i"

        [[mutant]]
        id = "two_edits"
        exercise = "lstm.cell"
        mistake = "two edits"
        correct = true
        patches = [{find = "a", replace = "b"}, {find = "c", replace = ""}]
        """,
    )
    assert load("lstm") == (
        Mutant("gates_swapped", "lstm", "lstm.gates", "swapping the input and forget gates", (("i, f", "f, i"),)),
        Mutant("two_edits", "lstm", "lstm.cell", "two edits", (("a", "b"), ("c", "")), True),
    )


def test_load_of_every_module_follows_the_course_order(catalog):
    """``load()`` reads the modules in rubric order and skips a module without a file."""
    entry = '[[mutant]]\nid = "{id}"\nexercise = "{ex}"\nmistake = "m"\nfind = "x"\nreplace = "y"\n'
    catalog("elbo", entry.format(id="e1", ex="elbo.kl"))
    catalog("attention", entry.format(id="a1", ex="attention.sdpa") + entry.format(id="a2", ex="attention.mha"))
    assert [(m.module, m.id) for m in load()] == [("attention", "a1"), ("attention", "a2"), ("elbo", "e1")]
    assert load("lstm") == ()
    assert rubric.MODULES.index("attention") < rubric.MODULES.index("elbo")


def test_a_file_without_entries_is_an_empty_catalog(catalog):
    """A file with no ``[[mutant]]`` tables (comments only) holds no entries."""
    catalog("attention", "# nothing yet\n")
    assert load("attention") == ()


def test_malformed_toml_is_an_error(catalog):
    """A file that is not TOML raises ``tomllib.TOMLDecodeError`` (a ``ValueError``) naming the line."""
    catalog("attention", '[[mutant]]\nid = "x"\nfind = "unterminated\n')
    with pytest.raises(tomllib.TOMLDecodeError, match="line 3"):
        load("attention")


def test_an_unknown_exercise_is_a_catalog_error(catalog):
    """An entry for an exercise the rubric lacks is refused, naming the module and the entry."""
    catalog(
        "attention", '[[mutant]]\nid = "typo"\nexercise = "attention.spda"\nmistake = "m"\nfind = "a"\nreplace = "b"\n'
    )
    with pytest.raises(CatalogError, match=r"^attention:typo: unknown exercise 'attention\.spda'$"):
        load("attention")


def test_an_entry_without_a_required_field_is_a_catalog_error(catalog):
    """An entry missing ``mistake`` (or ``find``) is a :class:`CatalogError` naming the entry."""
    catalog("attention", '[[mutant]]\nid = "half"\nexercise = "attention.sdpa"\nfind = "a"\nreplace = "b"\n')
    with pytest.raises(CatalogError, match="half"):
        load("attention")


def test_a_patch_that_does_not_apply_once_is_a_catalog_error():
    """``find`` must occur exactly once in the reference; the error says how often it does."""
    absent = Mutant("absent", "elbo", "elbo.kl", "m", (("text that is not in the reference", ""),))
    with pytest.raises(CatalogError, match=r"^elbo:absent: 'text that is not in the reference' occurs 0 times"):
        absent.source()
    twice = Mutant("twice", "elbo", "elbo.kl", "m", (("def ", "def "),))
    with pytest.raises(CatalogError, match="occurs [2-9][0-9]* times"):
        twice.source()


def test_the_shipped_catalog_loads():
    """Every shipped entry names an exercise of its own module, with a unique id in its module
    and a one-line mistake."""
    load.cache_clear()
    entries = load()
    assert entries
    for m in entries:
        assert m.exercise in rubric.BY_ID and rubric.BY_ID[m.exercise].module == m.module
        assert m.mistake and "\n" not in m.mistake and m.patches and not m.trivial
    ids = [(m.module, m.id) for m in entries]
    assert len(ids) == len(set(ids))


# ---- trivial entries ----------------------------------------------------------------------


@pytest.mark.parametrize("module", rubric.MODULES)
def test_trivial_entries_of_a_module(module):
    """Each exercise of the module gets one trivial entry per kind (zeros, ones, noise, echo),
    with an id made of the kind and the exercise's name, the kind's description as mistake,
    and no patch."""
    entries = trivial(module)
    exercises = rubric.exercises_of(module)
    assert len(entries) == 4 * len(exercises)
    assert [(m.exercise, m.trivial) for m in entries] == [(ex.id, k) for ex in exercises for k in TRIVIAL_KINDS]
    for m in entries:
        assert m.id == f"trivial_{m.trivial}_{m.exercise.split('.', 1)[1]}"
        assert (m.module, m.mistake, m.patches, m.correct) == (module, TRIVIAL_KINDS[m.trivial], (), False)
    assert set(TRIVIAL_KINDS) == {"zeros", "ones", "noise", "echo"}


def test_trivial_of_every_module():
    """``trivial()`` is the trivial entries of every module, in course order."""
    assert trivial() == tuple(m for module in rubric.MODULES for m in trivial(module))


def test_hint_candidates_are_the_wrong_entries_and_the_trivial_ones(catalog):
    """Hints may name the catalogued mistakes and the trivial outputs, never a correct alternative."""
    catalog(
        "elbo",
        '[[mutant]]\nid = "wrong"\nexercise = "elbo.kl"\nmistake = "m"\nfind = "a"\nreplace = "b"\n'
        '[[mutant]]\nid = "fine"\nexercise = "elbo.kl"\nmistake = "ok"\ncorrect = true\nfind = "a"\nreplace = "c"\n',
    )
    assert [m.id for m in mistakes.hint_candidates("elbo")] == ["wrong"] + [m.id for m in trivial("elbo")]


# ---- precise ------------------------------------------------------------------------------


def entry(mistake, exercise="attention.sdpa", ident="x"):
    """A matched entry of ``exercise`` whose hint is ``mistake``."""
    return Mutant(ident, exercise.split(".")[0], exercise, mistake, ())


@pytest.mark.parametrize(
    ("matched", "exercise", "expected"),
    [
        ([], None, []),
        ([entry("a")], None, ["a"]),
        ([entry("a", ident="1"), entry("a", ident="2")], None, ["a"]),  # one mistake, two entries
        ([entry("a"), entry("b")], None, []),  # two mistakes tie: no guess
        ([entry("a"), entry("b", "attention.mha")], "attention.mha", ["b"]),  # the test's exercise first
        ([entry("a"), entry("b", "attention.mha")], "attention.sdpa", ["a"]),
        ([entry("a"), entry("b"), entry("c", "attention.mha")], "attention.sdpa", []),
        ([entry("a"), entry("b")], "lstm.gates", []),  # none of the test's own: all count
        ([entry("a")], "lstm.gates", ["a"]),
    ],
)
def test_precise_names_one_mistake_or_none(matched, exercise, expected):
    """A hint names a mistake only when exactly one distinct mistake matched, counting the
    entries of the test's exercise first; never a list of guesses."""
    assert precise(matched, exercise) == expected


def test_same_compares_outputs_as_hints_do():
    """Tensors agree within a small tolerance with the same shape, dtype and device; other
    values by type and ``==``."""
    a = torch.tensor([1.0, 2.0])
    assert mistakes.same(a, a + 1e-5)
    assert not mistakes.same(a, a + 1e-2)
    assert not mistakes.same(a, a.double())
    assert not mistakes.same(a, a[:1])
    assert mistakes.same(torch.zeros(2, device="meta"), torch.ones(2, device="meta"))
    assert mistakes.same((a, 3), [a, 3])
    assert not mistakes.same(3, 3.0)
    assert not mistakes.same(a, [1.0, 2.0])
