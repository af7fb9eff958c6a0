"""A class like the trial's, for the peer-review tests: 13 submissions of the ``attention``
module, one of them full of who wrote it, and no roster needed.

``make_class(root)`` writes ``root/submissions/<id>`` (a folder with ``attention.py``, or
``<id>.zip`` with the module in a nested folder) and returns a :class:`ClassInfo`: per
student the id, the path, the source, whether its ``scaled_dot_product_attention`` is right,
what a roster would list and the **forbidden** strings (names, email, handle, student number,
path fragments) that no page a peer sees may show.  :meth:`ClassInfo.leaks` greps a page for
every student's forbidden strings, as whole words (``Doe`` is not found in ``Does``, but
``jane`` is in ``janeAttention`` and ``jdoe`` in ``jdoe_debug``).

The class:

* ``jane_doe-20231234``: the reference, with her name and email in the docstring and
  ``__author__``/``__email__``, her student number, her GitHub URL and handle
  (``github.com/janedoe``, ``@janedoe``), home paths (``/home/jdoe``, ``C:\\Users\\jane``,
  ``/Users/janedoe``, ``/tmp/jane_doe_debug.log``), identifiers built from her name
  (``janeDebug``, ``jdoe_debug``, ``janeAttention``) and a classmate thanked by name (Bob
  Smith).  Her ``causal_mask`` uses ``jdoe_debug``, which she no longer defines: it raises
  ``NameError: name 'jdoe_debug' is not defined`` (her sdpa is right);
* ``kim.minsu``: the einsum variant, with a Korean author line (``작성자: 김민수``, ``학번``),
  a Korean email and a TA thanked (``이영희 조교님``);
* ``max_mean``: the reference with a helper keyed by the strings ``"max"`` and ``"mean"`` and
  the email ``max.mean@example.edu``: the strings must stay;
* ``ana_lee`` (an author comment), ``ben_kim`` (a renamed copy that names Ana Lee),
  ``cho_park`` (a ``.zip``, ``torch.where``), ``dan_oh`` (a manual softmax, Colab and Kaggle
  links), and six catalogued mistakes or the stub, some with a handle or a number.
"""

import csv
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from grader import ROOT, mistakes

REFERENCE = (ROOT / "solutions" / "attention.py").read_text(encoding="utf-8")
STUB = (ROOT / "assignments" / "attention.py").read_text(encoding="utf-8")
MODULE = "attention"
UNIT = "attention.sdpa"
SDPA_DEF = "def scaled_dot_product_attention(q, k, v, mask=None):\n"
DOCSTRING_HEAD = '"""Module `attention`: the building blocks of the Transformer (DL Basic, lecture 8).\n'
IMPORTS = "import math\n\nimport torch\nfrom torch import nn\n"


@dataclass(frozen=True)
class Student:
    """One submission of the class."""

    id: str
    #: ``root/submissions/<id>`` (a folder) or ``root/submissions/<id>.zip``
    path: Path
    #: its ``attention.py``
    source: str
    #: whether its ``scaled_dot_product_attention`` is right (the unit ``attention.sdpa`` passes)
    passes_sdpa: bool
    #: what a roster would list for it (name, email)
    roster: tuple[str, ...]
    #: what must never show on a page a peer sees (case-sensitive, matched as whole words)
    forbidden: tuple[str, ...]


@dataclass(frozen=True)
class ClassInfo:
    """The class :func:`make_class` wrote."""

    root: Path
    submissions: Path
    students: tuple[Student, ...]

    @property
    def ids(self) -> list[str]:
        """The submission ids, sorted."""
        return sorted(s.id for s in self.students)

    def student(self, ident: str) -> Student:
        """The student with id ``ident``."""
        return next(s for s in self.students if s.id == ident)

    def forbidden(self) -> dict[str, tuple[str, ...]]:
        """Per student id, the strings that must never show to a peer."""
        return {s.id: s.forbidden for s in self.students}

    def leaks(self, text: str) -> list[tuple[str, str]]:
        """``(student id, forbidden string)`` for every forbidden string of any student in
        ``text``, as a whole word: no letter before it, no lowercase letter after it (so that
        ``jane`` is found in ``janeAttention`` and ``jane_x``, ``Doe`` not in ``Does``)."""
        found = []
        for student in self.students:
            for secret in student.forbidden:
                if re.search(rf"(?<![A-Za-z]){re.escape(secret)}(?![a-z])", text):
                    found.append((student.id, secret))
        return found

    def write_roster(self, path: Path) -> Path:
        """A roster CSV (``id,name,email``) of the class at ``path``."""
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "name", "email"])
            for student in sorted(self.students, key=lambda s: s.id):
                name, email = (list(student.roster) + ["", ""])[:2]
                writer.writerow([student.id, name, email])
        return path


def _patched(source: str, *edits: tuple[str, str]) -> str:
    """``source`` with each ``(find, replace)`` made; each ``find`` occurs exactly once."""
    for find, replace in edits:
        assert source.count(find) == 1, f"{find!r} occurs {source.count(find)} times"
        source = source.replace(find, replace)
    return source


def _mistake(entry_id: str) -> str:
    return next(m for m in mistakes.load(MODULE) if m.id == entry_id).source()


def _renamed(source: str) -> str:
    """The reference with the local variables of its sdpa renamed (a copy that hides)."""
    head, rest = source.split(SDPA_DEF, 1)
    body, sep, tail = rest.partition("\ndef ")
    for old, new in (("scores", "logits"), ("weights", "attn"), ("d_k", "dim")):
        body = re.sub(rf"\b{old}\b", new, body)
    return head + SDPA_DEF + body + sep + tail


JANE = _patched(
    REFERENCE,
    (
        DOCSTRING_HEAD,
        DOCSTRING_HEAD + "\nHomework of Jane Doe (jane.doe@example.edu), student number 20231234.\n"
        "Code and notes: https://github.com/janedoe/dl-basic\n",
    ),
    (
        IMPORTS,
        IMPORTS + "\n__author__ = 'Jane Doe'\n__email__ = 'jane.doe@example.edu'\n\n"
        "# questions? ping me, @janedoe; thanks to Bob Smith for the all-masked-rows trick\n"
        'DATA_DIR = "/home/jdoe/dl-basic/data"  # on my laptop: C:\\Users\\jane\\dl-basic\\data\n'
        'DEBUG_LOG = "/tmp/jane_doe_debug.log"\n'
        "janeDebug = False\n",
    ),
    (
        "    weights = torch.softmax(scores, dim=-1)\n",
        "    weights = torch.softmax(scores, dim=-1)\n"
        "    if janeDebug:  # Jane: print the shapes\n"
        '        print(f"[jdoe] weights {tuple(weights.shape)} -> {DEBUG_LOG}")\n',
    ),
    (
        "    return torch.ones(length, length, dtype=torch.bool, device=device).tril()\n",
        "    mask = torch.ones(length, length, dtype=torch.bool, device=device).tril()\n"
        "    if jdoe_debug:  # TODO(jdoe): remove before submitting\n"
        '        print("causal mask", mask.shape, file=open(DEBUG_LOG, "a"))\n'
        "    return mask\n",
    ),
)
JANE += (
    "\n\ndef janeAttention(q, k, v, mask=None):\n"
    '    """Jane\'s own wrapper, kept for her notebook /Users/janedoe/notebooks/attn.ipynb."""\n'
    "    return scaled_dot_product_attention(q, k, v, mask)\n"
)

KIM = "# 작성자: 김민수 (Kim Minsu), 학번: 2022123456, minsu.kim@example.ac.kr\n# 도움: 이영희 조교님\n" + _mistake(
    "sdpa_einsum"
)

MAX = _patched(
    REFERENCE,
    (DOCSTRING_HEAD, DOCSTRING_HEAD + "\nMax Mean, max.mean@example.edu.\n"),
    (
        "\n\ndef causal_mask(",
        '\n\n_POOL = {"max": torch.amax, "mean": torch.mean}\n\n\n'
        'def pool_heads(weights, how="mean"):\n'
        '    """Pool the attention weights ``(B, H, L_q, L_k)`` over the heads: "max" or "mean"."""\n'
        "    return _POOL[how](weights, dim=1)\n\n\ndef causal_mask(",
    ),
)

ANA = _patched(REFERENCE, (SDPA_DEF, SDPA_DEF + "    # Author: Ana Lee <ana.lee@uni.example>\n"))

BEN = _patched(_renamed(REFERENCE), (SDPA_DEF, SDPA_DEF + "    # discussed this with Ana Lee\n"))

CHO = _patched(
    _mistake("sdpa_torch_where"), (SDPA_DEF, SDPA_DEF + "    # Cho Park's version: torch.where, not masked_fill\n")
)

DAN = _patched(
    _mistake("sdpa_manual_softmax"),
    (
        SDPA_DEF,
        SDPA_DEF + "    # tried first in https://colab.research.google.com/drive/1AbCdEfGhIjKlMnOp\n"
        "    # see also https://www.kaggle.com/code/danoh/attention-notes and\n"
        "    # https://pytorch.org/docs/stable/generated/torch.nn.functional.scaled_dot_product_attention.html\n",
    ),
)

FAY = _patched(_mistake("sdpa_no_scale"), (SDPA_DEF, SDPA_DEF + "    # written by fhan\n"))

GUS = _patched(_mistake("sdpa_mask_inverted"), (SDPA_DEF, SDPA_DEF + "    # ID: 20239876\n"))

# (id, source, passes sdpa, roster row, forbidden); the zip student is written as a zip
CLASS: tuple[tuple[str, str, bool, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "jane_doe-20231234",
        JANE,
        True,
        ("Jane Doe", "jane.doe@example.edu"),
        (
            "Jane",
            "jane",
            "Doe",
            "doe",
            "jdoe",
            "janedoe",
            "20231234",
            "jane.doe@example.edu",
            "/home/jdoe",
            "C:\\Users\\jane",
            "Bob Smith",
            "Bob",
            "Smith",
        ),
    ),
    (
        "kim.minsu",
        KIM,
        True,
        ("김민수", "minsu.kim@example.ac.kr"),
        ("kim.minsu", "김민수", "민수", "이영희", "2022123456", "minsu.kim", "Minsu", "minsu"),
    ),
    ("max_mean", MAX, True, ("Max Mean", "max.mean@example.edu"), ("max_mean", "max.mean", "Max Mean", "Max", "Mean")),
    ("ana_lee", ANA, True, ("Ana Lee", "ana.lee@uni.example"), ("ana_lee", "ana.lee", "Ana Lee", "Ana", "Lee")),
    ("ben_kim", BEN, True, ("Ben Kim", "ben.kim@uni.example"), ("ben_kim", "Ben Kim", "Ben", "Kim")),
    ("cho_park", CHO, True, ("Cho Park", "cho.park@uni.example"), ("cho_park", "Cho Park", "Cho", "Park")),
    ("dan_oh", DAN, True, ("Dan Oh", "dan.oh@uni.example"), ("dan_oh", "Dan", "danoh", "1AbCdEfGhIjKlMnOp")),
    ("eve_jung", _mistake("sdpa_softmax_query_axis"), False, ("Eve Jung",), ("eve_jung", "Eve", "Jung")),
    ("fay_han", FAY, False, ("Fay Han",), ("fay_han", "Fay", "Han", "fhan")),
    ("gus_yoon", GUS, False, ("Gus Yoon",), ("gus_yoon", "Gus", "Yoon", "20239876")),
    ("hal_song", _mistake("sdpa_fill_zero"), False, ("Hal Song",), ("hal_song", "Hal", "Song")),
    ("ivy_kang", _mistake("sdpa_scale_by_dk"), False, ("Ivy Kang",), ("ivy_kang", "Ivy", "Kang")),
    ("jon_lim", STUB, False, ("Jon Lim",), ("jon_lim", "Jon", "Lim")),
)
#: The student who hands in a zip (the module in ``<id>/attention.py`` inside it).
ZIPPED = "cho_park"


def make_class(root: Path) -> ClassInfo:
    """Write the class's 13 submissions into ``root/submissions/`` (see the module docstring)."""
    submissions = root / "submissions"
    submissions.mkdir(parents=True, exist_ok=True)
    students = []
    for ident, source, passes, roster, forbidden in CLASS:
        if ident == ZIPPED:
            path = submissions / f"{ident}.zip"
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr(f"{ident}/{MODULE}.py", source)
        else:
            path = submissions / ident
            path.mkdir()
            (path / f"{MODULE}.py").write_text(source, encoding="utf-8")
        students.append(Student(ident, path, source, passes, roster, forbidden))
    return ClassInfo(root, submissions, tuple(students))
