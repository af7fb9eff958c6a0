"""What a reviewer sees of a solution (grader/review/anonymize.py): no author name, email, user
folder, handle, student number or ``__author__``, found with or without a roster; the same
lines, and the same code apart from renamed identifiers, so that reviewers' line ranges point
at what the author wrote."""

import ast
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader import ROOT
from grader.review.anonymize import HIDDEN, Identity, anonymize, identity_of, redact
from tests.selftest.review_class import make_class

NAMES = ["Jane Q. Doe", "jdoe42"]

SOURCE = '''\
#!/home/jdoe/venv/bin/python
"""Scaled dot-product attention, by Jane Doe <jane.doe@example.edu>.

Data came from /Users/jane/data and C:\\\\Users\\\\jane\\\\data.
"""
__author__ = "Jane Doe"
__email__ = (
    "jane.doe@example.edu"
)
import math  # the standard library

import torch


def sdpa(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d)) v; jane's second try."""
    # written by jdoe42
    d = q.shape[-1]  # DOE: d is the head size
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # q@k.transpose(-2, -1), scaled
    if mask is not None:
        __credits__ = ["Jane"]
        scores = scores.masked_fill(~mask, float("-inf"))  # Author: me
    # keys are the last dimension
    return torch.softmax(scores, dim=-1) @ v, "/home/jdoe/out.pt"
'''

JANE = identity_of("jane_doe-20231234", sources=["# see /home/jdoe/x"])


def lines(text):
    return text.split("\n")


def code_only(source):
    """The code without docstrings, bare strings, author assignments and ``pass``, as a dump."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                block[:] = [s for s in block if not _dropped(s)]
    return ast.dump(tree)


def _dropped(statement):
    if isinstance(statement, ast.Pass):
        return True
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        return isinstance(statement.value.value, str)
    if isinstance(statement, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id.startswith("__") for t in statement.targets)
    return False


def name_lines(source):
    """Each name in the code with its line and column: they must not move."""
    return sorted(
        (n.lineno, n.col_offset, n.id)
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Name) and n.id[:2] != "__"
    )


def test_the_example_loses_names_emails_paths_and_author_variables():
    out = anonymize(SOURCE, NAMES)
    ast.parse(out)
    assert len(lines(out)) == len(lines(SOURCE))
    for secret in ("jane", "doe", "jdoe42", "@example", "/home/", "/Users/", "Users\\\\", "__author__", "__credits__"):
        assert secret not in out.lower()
    assert code_only(out) == code_only(SOURCE.replace('"/home/jdoe/out.pt"', f'"{HIDDEN}"'))
    assert name_lines(out) == name_lines(SOURCE)
    got = lines(out)
    assert got[0] == f"#!{HIDDEN}"  # the shebang names a user's folder
    assert got[1] == f'"""Scaled dot-product attention, by {HIDDEN} <{HIDDEN}>.'
    assert got[3] == f"Data came from {HIDDEN} and {HIDDEN}."  # the full stop is no part of the path
    assert got[5:9] == ["", "", "", ""]  # __author__, and __email__ over 3 lines
    assert got[9] == "import math  # the standard library"  # other comments stay
    assert got[15] == f'    """softmax(q k^T / sqrt(d)) v; {HIDDEN}\'s second try."""'
    assert got[16:18] == [f"    # written by {HIDDEN}", f"    d = q.shape[-1]  # {HIDDEN}: d is the head size"]
    assert got[18].endswith("# q@k.transpose(-2, -1), scaled")  # a matmul is not an email
    assert got[20] == ""  # the block keeps a statement (alone, it would become ``pass``)
    assert got[21].endswith('float("-inf"))  # Author: me')
    assert got[22] == "    # keys are the last dimension"
    assert got[23] == f'    return torch.softmax(scores, dim=-1) @ v, "{HIDDEN}"'


# -- 1. comments are never removed, only their identifying tokens ---------------------------


def test_comments_lose_their_names_not_their_text():
    src = "# Author: Jane Doe\n# keys are the last dimension\nx = 1  # Jane's fix, see /home/jdoe/notes.txt\n"
    out = anonymize(src)  # no roster: the author line gives the name
    assert out == f"# Author: {HIDDEN}\n# keys are the last dimension\nx = 1  # {HIDDEN}'s fix, see {HIDDEN}\n"


def test_names_match_whole_words_any_case_and_their_parts():
    src = "x = 1  # by MARIA\ny = 2  # maria-lena helped\nz = 3  # primarily\nw = 4  # Lopez\n"
    out = anonymize(src, ["Maria-Lena Lopez"])
    assert out == f"x = 1  # by {HIDDEN}\ny = 2  # {HIDDEN} helped\nz = 3  # primarily\nw = 4  # {HIDDEN}\n"


def test_short_name_parts_are_not_searched():
    src = "x = 1  # a li of lines\ny = 2  # Wei\n"
    assert anonymize(src, ["Li Wei"]) == f"x = 1  # a li of lines\ny = 2  # {HIDDEN}\n"


# -- 2. whole tokens only; common code words only in the name's capitalization --------------


def test_code_strings_hide_names_only_as_spelled():
    """``"max"`` is an argument when the roster has a Max; ``"Max Power"`` in code is hidden."""
    src = 'a = t.amax(dim=-1, mode="max")\nb = "Max Power"\n"""max and Max"""\n'
    out = anonymize(src, ["Max Power"])
    assert out == f'a = t.amax(dim=-1, mode="max")\nb = "{HIDDEN}"\n"""max and {HIDDEN}"""\n'


def test_a_string_equal_to_part_of_the_email_stays():
    src = (
        '"""Max Mean, max.mean@example.edu: max and mean pooling."""\n'
        '_POOL = {"max": torch.amax, "mean": torch.mean}\n'
        'y = pool(x, how="mean")  # mean over heads; Mean wrote it\n'
    )
    out = anonymize(src, identity_of("", roster=["max.mean@example.edu"]))
    assert out == (
        f'"""{HIDDEN}, {HIDDEN}: max and mean pooling."""\n'
        '_POOL = {"max": torch.amax, "mean": torch.mean}\n'
        f'y = pool(x, how="mean")  # mean over heads; {HIDDEN} wrote it\n'
    )


def test_a_name_inside_a_longer_word_is_no_name():
    src = 'x = 1  # Does it? Janet and doesnt\ns = "Doesn\'t"\n'
    assert anonymize(src, ["Jane Doe"]) == src


def test_an_identifier_of_the_source_counts_as_a_common_word():
    src = "alpha = 0.5\n# alpha is the rate, tuned by Alpha\n"
    assert anonymize(src, identity_of("alpha_kim")) == f"alpha = 0.5\n# alpha is the rate, tuned by {HIDDEN}\n"


def test_a_path_component_with_a_name_is_hidden_whole():
    src = 'LOG = "/tmp/jane_doe_debug.log"\nOUT = "runs/janedoe/ckpt.pt"  # jane_doe_notes.txt\nX = "a/b"\n'
    out = anonymize(src, identity_of("jane_doe"))
    assert out == f'LOG = "/tmp/{HIDDEN}"\nOUT = "runs/{HIDDEN}/ckpt.pt"  # {HIDDEN}\nX = "a/b"\n'


def test_f_string_fields_are_code_and_stay():
    src = 'msg = f"Ann\'s {tuple(w.shape)!r:>{width}} for /home/ann/{name}, {{Ann}}"\n'
    out = anonymize(src, ["Ann Lee"])
    assert out == f'msg = f"{HIDDEN}\'s {{tuple(w.shape)!r:>{{width}}}} for {HIDDEN}{{name}}, {{{{{HIDDEN}}}}}"\n'

    def fields(source):
        return [ast.dump(n) for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FormattedValue)]

    assert len(fields(src)) == 3 and fields(out) == fields(src)


def test_a_drive_letter_needs_a_folder_name():
    src = 'a = "class C:\\n    pass"\nb = r"D:\\data\\ann"\n# saved in E:/Models/x.pt\n'
    assert anonymize(src) == f'a = "class C:\\n    pass"\nb = r"{HIDDEN}"\n# saved in {HIDDEN}\n'


def test_a_literal_whose_escape_would_break_is_hidden_whole():
    src = 'p = "C:\\\\x\\"y"\nq = 1\n'  # p = "C:\\x\"y": the path stops at the escaped quote
    ast.parse(src)
    out = anonymize(src)
    ast.parse(out)
    assert out == f'p = "{HIDDEN}"\nq = 1\n'


def test_a_multiline_literal_hidden_whole_keeps_its_lines():
    src = 'p = """C:\\\\x\\"\n\nend"""\nq = 1\n'
    out = anonymize(src)
    ast.parse(out)
    assert len(lines(out)) == len(lines(src)) and lines(out)[3] == "q = 1"


def test_an_escape_before_a_name_is_not_part_of_it():
    src = 's = "by\\nJane"\n'
    assert anonymize(src, ["Jane Doe"]) == f's = "by\\n{HIDDEN}"\n'


# -- 3. student numbers ---------------------------------------------------------------------


def test_student_numbers_in_prose_and_strings():
    src = (
        "x = 0.12345678  # 0x12345678 1234567.5 1024x768 shape (1, 2), 12345678 and 9876543210\n"
        's = "id 7654321"\n'
        "n = 1234567\n"  # a number in code that is no harvested student number stays
    )
    assert anonymize(src) == (
        f"x = 0.12345678  # 0x12345678 1234567.5 1024x768 shape (1, 2), {HIDDEN} and {HIDDEN}\n"
        f's = "id {HIDDEN}"\n'
        "n = 1234567\n"
    )


def test_a_harvested_student_number_is_hidden_everywhere_and_zero_in_code():
    src = "STUDENT = 20231234\nOTHER = 2023_1234\nrun = 's20231234'  # 20231234\nx = 20231234.5\n"
    out = anonymize(src, identity_of("jane_doe-20231234"))
    assert out == f"STUDENT = 0\nOTHER = 0\nrun = 's{HIDDEN}'  # {HIDDEN}\nx = 20231234.5\n"
    ast.parse(out)


@pytest.mark.parametrize(
    "line, number",
    [("학번: 2022123456", "2022123456"), ("Student number: 20231234", "20231234"), ("ID: 12345", "12345")],
)
def test_student_number_lines_are_harvested(line, number):
    src = f"# {line}\nx = 1  # run {number}\n"
    identity = identity_of("", sources=[src])
    assert number in identity.numbers
    assert number not in anonymize(src)


# -- 4. identifiers built from a name are renamed consistently ------------------------------


def test_identifiers_with_a_name_part_are_renamed_everywhere():
    src = (
        "import jdoe_utils\n"
        "from torch import nn\n"
        "jdoe_debug = False\n"
        "class JaneNet(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        '        self.jdoe_cache = getattr(self, "jdoe_debug", None)\n'
        "def janeAttention(q, JANE_MAX=1):\n"
        '    print(f"{jdoe_debug}", JaneNet, jdoe_utils.x)  # jdoe_debug is off\n'
        "    return janeAttention, max(q)\n"
    )
    out = anonymize(src, JANE)
    assert out == (
        "import jdoe_utils\n"  # an imported name is never touched
        "from torch import nn\n"
        "anon_debug = False\n"
        "class AnonNet(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        '        self.anon_cache = getattr(self, "anon_debug", None)\n'
        "def anonAttention(q, ANON_MAX=1):\n"
        '    print(f"{anon_debug}", AnonNet, jdoe_utils.x)  # anon_debug is off\n'
        "    return anonAttention, max(q)\n"
    )


def test_a_renamed_identifier_never_collides():
    src = "anon_debug = 1\njdoe_debug = 2\njane_doe_debug = 3\nprint(anon_debug, jdoe_debug, jane_doe_debug)\n"
    out = anonymize(src, JANE)
    names = [n.id for n in ast.walk(ast.parse(out)) if isinstance(n, ast.Name)]
    assert names[:3] == ["anon_debug", "anon2_debug", "anon3_debug"] or len(set(names[:3])) == 3
    assert "jdoe" not in out and "jane" not in out
    assert out.splitlines()[0] == "anon_debug = 1"


def test_common_words_never_rename_identifiers():
    src = "max_len = 3\nmean_pool = max(max_len, 1)\n"
    assert anonymize(src, identity_of("max_mean")) == src


# -- 5. URLs --------------------------------------------------------------------------------


def test_documentation_urls_stay_personal_ones_go():
    kept = [
        "https://pytorch.org/docs/stable/generated/torch.nn.functional.softmax.html",
        "https://docs.python.org/3/library/re.html",
        "https://numpy.org/doc/stable/",
        "https://arxiv.org/abs/1706.03762",
        "https://en.wikipedia.org/wiki/Softmax_function",
        "https://d2l.ai/chapter_attention-mechanisms-and-transformers/index.html",
        "https://github.com/pytorch/pytorch/issues/41508",
        "https://example.com/about",
    ]
    personal = [
        "https://github.com/janedoe/dl-basic",
        "github.com/someone-else/homework",
        "https://gitlab.com/jdoe/hw",
        "https://www.kaggle.com/code/someone/attention-notes",
        "https://www.kaggle.com/someone",
        "https://colab.research.google.com/drive/1AbCdEf",
        "https://drive.google.com/file/d/xyz/view",
        "https://www.linkedin.com/in/someone",
        "https://someone.github.io/blog/",
        "https://someone.tistory.com/12",
        "https://blog.example.com/jane-doe/post",  # a blog with the name
        "https://stackoverflow.com/users/1234/janedoe",  # a site of answers, but her profile
    ]
    src = "".join(f"# see {url}.\n" for url in kept) + "".join(f'u = "{url}"\n' for url in personal)
    out = anonymize(src, identity_of("jane_doe"))
    assert out == "".join(f"# see {url}.\n" for url in kept) + f'u = "{HIDDEN}"\n' * len(personal)


def test_a_personal_url_gives_a_handle():
    identity = identity_of("", sources=["# code: https://github.com/zorro-dev/dl\n"])
    assert "zorro-dev" in identity.handles
    assert anonymize("zorro_dev_x = 1  # by zorro-dev\n", identity) == f"anon_dev_x = 1  # by {HIDDEN}\n"


# -- 6. handles -----------------------------------------------------------------------------


def test_handles_in_prose_not_decorators_or_matmul():
    src = (
        "@property\n"
        "def f(q, k):\n"
        '    """Use ``@property`` here; questions to @jdoe42."""\n'
        "    return q@k, q @ k  # cc @jdoe42; see @torch.no_grad()\n"
    )
    assert anonymize(src) == (
        "@property\n"
        "def f(q, k):\n"
        f'    """Use ``@property`` here; questions to {HIDDEN}."""\n'
        f"    return q@k, q @ k  # cc {HIDDEN}; see @torch.no_grad()\n"
    )


def test_a_handle_found_in_a_comment_is_hidden_in_code_strings_too():
    src = '# ping @zed_kay\nprint("by @zed_kay", "@other")\n'
    assert anonymize(src) == f'# ping {HIDDEN}\nprint("by {HIDDEN}", "@other")\n'


# -- 7. other people ------------------------------------------------------------------------


def test_other_peoples_names_after_cue_words_without_a_roster():
    src = (
        "# thanks to Bob Smith for the trick; worked with Carol\n"
        "# trained with Adam, with Dask, with Gaussian noise\n"
        "# 도움: 이영희 조교님, 박지성님 감사합니다\n"
        "# discussed this with Ana Lee and Ben Kim\n"
    )
    assert anonymize(src) == (
        f"# thanks to {HIDDEN} for the trick; worked with {HIDDEN}\n"
        "# trained with Adam, with Dask, with Gaussian noise\n"
        f"# 도움: {HIDDEN} 조교님, {HIDDEN}님 감사합니다\n"
        f"# discussed this with {HIDDEN} and {HIDDEN}\n"
    )


def test_the_class_list_hides_classmates_in_prose_only():
    src = '# Ana helped, and ana_lee too; ask Ben\nwho = "Ana"\n'
    identity = identity_of("cho_park", others=["ana_lee", "ben_kim", "Ben Kim"])
    assert anonymize(src, identity) == f'# {HIDDEN} helped, and {HIDDEN} too; ask {HIDDEN}\nwho = "Ana"\n'


# -- 8. author variables --------------------------------------------------------------------


def test_author_assignments_anywhere():
    src = "import os; __author__ = 'x'; y = 1\n__maintainer__: str = 'y'\nclass A:\n    __email__ = 'a@b.cd'\n"
    out = anonymize(src)
    ast.parse(out)
    assert out == "import os; pass; y = 1\n\nclass A:\n    pass\n"


def test_author_values_are_harvested():
    src = '__author__ = "Jane Doe <jane.doe@example.edu>"\n__credits__ = ["Bob Smith"]\n# Jane and Bob, doe\n'
    assert anonymize(src) == f"\n\n# {HIDDEN} and {HIDDEN}, {HIDDEN}\n"
    identity = identity_of("", sources=[src])
    assert {"Jane", "Doe", "Bob", "Smith"} <= identity.parts and "jane.doe@example.edu" in identity.emails


# -- 9. lines, parsing, and sources that do not parse ---------------------------------------


def test_other_characters_before_a_statement_do_not_shift_it():
    """ast counts columns in UTF-8 bytes, tokenize in characters."""
    src = 'é = "ü"; __author__ = "Jane"  # √d\nx = 1  # Jané\n'
    out = anonymize(src, ["Jané"])
    assert out == f'é = "ü"; pass  # √d\nx = 1  # {HIDDEN}\n'


def test_a_source_that_does_not_parse_is_cleaned_line_by_line():
    src = (
        "def f(x:\n"
        "    y = '# not a comment jdoe42'  # jdoe42 wrote this\n"
        "    z = 2  # fine\n"
        '    __author__ = "jdoe42"\n'
        '    """Jane\'s notes:\n'
        "    jdoe_debug = 1 is not code here\n"
        '    """\n'
        "    jdoe_debug = 20231234\n"
        "    return '/home/jdoe/x'\n"
    )
    out = anonymize(src, identity_of("jane_doe-20231234", roster=["jdoe42"]))
    assert len(lines(out)) == len(lines(src))
    assert out == (
        "def f(x:\n"
        f"    y = '# not a comment {HIDDEN}'  # {HIDDEN} wrote this\n"
        "    z = 2  # fine\n"
        "\n"
        f'    """{HIDDEN}\'s notes:\n'
        "    anon_debug = 1 is not code here\n"
        '    """\n'
        "    anon_debug = 0\n"
        f"    return '{HIDDEN}'\n"
    )


def test_a_lone_carriage_return_is_a_line_break_too():
    src = 'x = 1  # Jane\r"""doc\rby Jane"""\ry = "Jane"\n'
    out = anonymize(src, ["Jane Doe"])
    assert out == f'x = 1  # {HIDDEN}\r"""doc\rby {HIDDEN}"""\ry = "{HIDDEN}"\n'
    ast.parse(out)


def test_nothing_to_hide_changes_nothing():
    src = '"""Attention."""\nimport torch  # torch\n\ndef f(x):\n    return x @ x.mT  # a@b.mT\n'
    assert anonymize(src, ["Jane Doe"]) == src
    assert anonymize("", ["Jane"]) == ""


@pytest.mark.parametrize(
    "path", sorted((ROOT / "solutions").glob("*.py")) + sorted((ROOT / "assignments").glob("*.py"))
)
def test_the_course_code_has_no_identity(path):
    source = path.read_text(encoding="utf-8")
    assert anonymize(source) == source
    assert anonymize(source, JANE) == source
    assert anonymize(source, identity_of("max_mean", roster=["Max Mean", "max.mean@example.edu"])) == source


# -- 10. redact: plain text, the same rules ---------------------------------------------------


def test_redact_exception_texts():
    identity = identity_of("jane_doe-20231234", sources=["jdoe_debug = 1  # /home/jdoe\n"])
    assert redact("FileNotFoundError: [Errno 2] No such file: '/home/jdoe/data.pt'") == (
        f"FileNotFoundError: [Errno 2] No such file: '{HIDDEN}'"
    )
    assert (
        redact("NameError: name 'jdoe_debug' is not defined", identity) == "NameError: name 'anon_debug' is not defined"
    )
    assert anonymize("print(jdoe_debug)\n", identity) == "print(anon_debug)\n"  # the same name in the code
    assert redact("jane_doe-20231234/attention.py: Jane Doe <jane.doe@example.edu>, 20231234", identity) == (
        f"{HIDDEN}/attention.py: {HIDDEN} <{HIDDEN}>, {HIDDEN}"
    )
    assert redact("yours tensor([0.5, 0.5]) expected tensor([1., 0.]) (max abs diff 0.5)", identity) == (
        "yours tensor([0.5, 0.5]) expected tensor([1., 0.]) (max abs diff 0.5)"
    )


def test_redact_harvests_from_the_text_itself():
    assert redact("Author: Jane Doe; Jane said hi to @jdoe42") == f"Author: {HIDDEN}; {HIDDEN} said hi to {HIDDEN}"


def test_a_plain_collection_of_names_is_read_like_a_roster():
    src = "x = 1  # Jane Doe, jdoe42, 20231234\n"
    names = ["jane_doe", "Jane Doe", "jane.doe@example.edu", "jdoe42", "20231234"]
    assert (
        anonymize(src, names)
        == anonymize(src, identity_of("", roster=names))
        == f"x = 1  # {HIDDEN}, {HIDDEN}, {HIDDEN}\n"
    )


# -- identity_of ----------------------------------------------------------------------------


def test_identity_from_the_id_and_folder_name():
    identity = identity_of("jane_doe-20231234", folder_name="kim.minsu.zip")
    assert {"Jane", "Doe", "Kim", "Minsu"} <= identity.parts
    assert {"jane_doe-20231234", "kim.minsu", "janedoe", "jdoe", "kimminsu"} <= identity.handles
    assert identity.numbers == {"20231234"}
    hash(identity)  # frozen: usable as a key
    assert identity | Identity() == identity


@pytest.mark.parametrize(
    "text, found",
    [
        ("# Author: Jane Doe", {"Jane", "Doe"}),
        ('"""Written by Jane Doe (2024)."""', {"Jane", "Doe"}),
        ("# @author jdoe", {"jdoe"}),
        ("# written by jdoe42", {"jdoe42", "jdoe"}),
        ("# Name: Jane Doe", {"Jane", "Doe"}),
        ("# 이름: 김민수", {"김민수", "민수"}),
        ("# 작성자: 김민수", {"김민수"}),
        ("# mail me: jane.doe@example.edu", {"Jane", "Doe", "jane.doe"}),
        ('DATA = "/home/jdoe/data"', {"jdoe"}),
        ('DATA = "/Users/janedoe/data"', {"janedoe"}),
        ('DATA = r"C:\\Users\\jane\\data"', {"jane"}),
        ("# https://github.com/janedoe/dl-basic", {"janedoe"}),
        ("# ping me @janedoe", {"janedoe"}),
    ],
)
def test_identity_from_the_sources(text, found):
    identity = identity_of("", sources=[text + "\n"])
    assert found <= identity.parts | identity.handles, identity


@pytest.mark.parametrize(
    "text",
    [
        "# Author: me",
        "# the authors of the paper",
        "# made by :func:`make`",
        "# written by hand",
        "# name: the layer's name",
        '"""Returns the weights; ``@property`` style; the author reads it."""',
        "# trained with Adam and with NumPy",
        'PIP = "@PIP@"',
        "# set from /home/user/data and /Users/Shared/x",
    ],
)
def test_what_is_no_identity(text):
    identity = identity_of("", sources=[text + "\n"])
    assert not (identity.parts | identity.handles | identity.names | identity.other_names), identity


def test_roster_and_others():
    identity = identity_of(
        "s1", roster=["Jane Doe", "jane.doe@example.edu", "20231234"], others=["ana_lee", "Bob Smith"]
    )
    assert {"Jane", "Doe"} <= identity.parts and identity.numbers == {"20231234"}
    assert {"Ana", "Lee", "Bob", "Smith"} <= identity.other_parts and "ana_lee" in identity.other_handles


# -- the class of the trial -----------------------------------------------------------------


@pytest.fixture(scope="module")
def the_class(tmp_path_factory):
    return make_class(tmp_path_factory.mktemp("class"))


def test_no_student_of_the_class_shows_without_a_roster(the_class):
    for student in the_class.students:
        identity = identity_of(
            student.id, folder_name=student.path.name, sources=[student.source], others=the_class.ids
        )
        out = anonymize(student.source, identity)
        ast.parse(out)
        assert len(lines(out)) == len(lines(student.source))
        assert the_class.leaks(out) == [], student.id


def test_the_class_with_a_roster_too(the_class):
    everyone = [name for s in the_class.students for name in (s.id, *s.roster)]
    for student in the_class.students:
        identity = identity_of(
            student.id, folder_name=student.path.name, sources=[student.source], roster=student.roster, others=everyone
        )
        assert the_class.leaks(anonymize(student.source, identity)) == [], student.id


def test_the_class_keeps_its_code(the_class):
    max_mean = the_class.student("max_mean")
    out = anonymize(max_mean.source, identity_of("max_mean", sources=[max_mean.source]))
    assert '_POOL = {"max": torch.amax, "mean": torch.mean}' in out and 'how="mean"' in out
    jane = the_class.student("jane_doe-20231234")
    identity = identity_of(jane.id, sources=[jane.source], others=the_class.ids)
    out = anonymize(jane.source, identity)
    assert "if anon_debug:" in out and "def anonAttention(q, k, v, mask=None):" in out
    assert (
        redact("NameError: name 'jdoe_debug' is not defined", identity) == "NameError: name 'anon_debug' is not defined"
    )
    renamed = {"jdoe_debug": "anon_debug", "janeDebug": "anonDebug", "janeAttention": "anonAttention"}
    assert [(r, n) for r, _, n in name_lines(out)] == [(r, renamed.get(n, n)) for r, _, n in name_lines(jane.source)]


# -- properties -----------------------------------------------------------------------------

WORDS = ["the", "mask", "shape", "Jane", "DOE", "jdoe42", "jane.doe@example.edu", "/home/jdoe/a.py", "C:\\temp\\x"]
PROSE = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)


@settings(max_examples=80, deadline=None)
@given(PROSE, PROSE, PROSE, st.booleans())
def test_generated_sources_keep_their_code_and_lose_the_author(comment, doc, line, crlf):
    doc, doc_line = (text.replace("\\", "\\\\") for text in (doc, line))  # backslashes doubled in docstrings
    src = (
        f'"""{doc}\n\n{doc_line}\n"""\n'
        f"import torch  # {comment}\n"
        "\n"
        "def attend(q, k):\n"
        f'    """{doc}"""\n'
        f"    # {line}\n"
        f"    return torch.softmax(q @ k.mT, -1)  # {comment}\n"
    )
    if crlf:
        src = src.replace("\n", "\r\n")
    out = anonymize(src, ["Jane Doe", "jdoe42"])
    ast.parse(out)
    assert out.count("\n") == src.count("\n")
    assert code_only(out) == code_only(src)
    assert name_lines(out) == name_lines(src)
    assert not re.search(r"jane|doe|@example|/home/|C:\\", out, re.IGNORECASE), out


NAMES_IN_CODE = ["scores", "weights", "max_len", "mean_pool", "jdoe_debug", "janeAttention", "JANE_MAX", "q", "k"]
STRINGS = ['"max"', '"mean"', '"/tmp/jane_doe_debug.log"', '"by Jane"', '"ok"', "'20231234'", 'f"{q} jdoe"']
COMMENTS = ["", "  # keys are the last dimension", "  # by Jane Doe", "  # @jdoe42", "  # max over keys", "  # q@k"]
STATEMENT = st.tuples(st.sampled_from(NAMES_IN_CODE), st.sampled_from(NAMES_IN_CODE + STRINGS + ["20231234", "1.5"]))
CODE_LINE = st.tuples(STATEMENT, st.sampled_from(COMMENTS)).map(lambda t: f"{t[0][0]} = {t[0][1]}{t[1]}")
BROKEN = st.sampled_from(["", "def broken(:", "x = (", 'y = """open'])


@settings(max_examples=100, deadline=None)
@given(st.lists(CODE_LINE, min_size=1, max_size=12), BROKEN, st.integers(0, 12))
def test_anonymize_keeps_lines_and_parsing_and_loses_the_author(code_lines, broken, at):
    code_lines = [
        "q = k = scores = weights = max_len = mean_pool = jdoe_debug = janeAttention = JANE_MAX = 1",
        *code_lines,
    ]
    if broken:
        code_lines.insert(min(at, len(code_lines)), broken)
    src = "\n".join(code_lines) + "\n"
    parses = _parses(src)
    identity = identity_of("jane_doe-20231234")
    out = anonymize(src, identity)
    assert out.count("\n") == src.count("\n")
    if parses:
        ast.parse(out)
    assert not re.search(r"jane|jdoe|\bdoe\b|20231234", out, re.IGNORECASE), out
    for kept in ('"max"', '"mean"', "max_len", "mean_pool", "# keys are the last dimension", "# max over keys"):
        assert (kept in src) == (kept in out), kept
    assert anonymize(out, identity) == out  # nothing left to hide


def _parses(source):
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


CLEAN_WORDS = ["the", "mask", "keys", "max", "mean", "softmax", "rows", "0.5", "q@k", "1024", "d_k", "(B, L)"]
CLEAN_PROSE = st.lists(st.sampled_from(CLEAN_WORDS), min_size=0, max_size=8).map(" ".join)
CLEAN_NAMES = st.sampled_from(["scores", "weights", "max_len", "mean", "attn", "x", "out"])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(CLEAN_NAMES, CLEAN_NAMES, CLEAN_PROSE, CLEAN_PROSE), min_size=1, max_size=8))
def test_a_source_without_identity_is_left_as_it_is(rows):
    src = "".join(f'{a} = {b}  # {comment}\n{a} = "{text}"\n' for a, b, comment, text in rows)
    assert anonymize(src) == src
    assert anonymize(src, identity_of("jane_doe-20231234", others=["ana_lee", "Bob Smith"])) == src
    assert redact(src) == src
