"""What a reviewer sees of a solution (grader/review/anonymize.py): no author name, email, user
folder or ``__author__``; the same lines, and the same code, so that reviewers' line ranges
point at what the author wrote."""

import ast
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from grader.review.anonymize import HIDDEN, anonymize

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
    assert got[0] == ""  # the shebang names a user's folder
    assert got[1] == f'"""Scaled dot-product attention, by {HIDDEN} <{HIDDEN}>.'
    assert got[3] == f"Data came from {HIDDEN} and {HIDDEN}"
    assert got[5:9] == ["", "", "", ""]  # __author__, and __email__ over 3 lines
    assert got[9] == "import math  # the standard library"  # other comments stay
    assert got[15] == f'    """softmax(q k^T / sqrt(d)) v; {HIDDEN}\'s second try."""'
    assert got[16:18] == ["", "    d = q.shape[-1]"]  # whole comments go, with their blanks
    assert got[18].endswith("# q@k.transpose(-2, -1), scaled")  # a matmul is not an email
    assert got[20] == ""  # the block keeps a statement (alone, it would become ``pass``)
    assert got[21].endswith('float("-inf"))')
    assert got[22] == "    # keys are the last dimension"
    assert got[23] == f'    return torch.softmax(scores, dim=-1) @ v, "{HIDDEN}"'


def test_names_match_whole_words_any_case_and_their_parts():
    src = "x = 1  # by MARIA\ny = 2  # maria-lena helped\nz = 3  # primarily\nw = 4  # Lopez\n"
    out = anonymize(src, ["Maria-Lena Lopez"])
    assert out == "x = 1\ny = 2\nz = 3  # primarily\nw = 4\n"


def test_short_name_parts_are_not_searched():
    src = "x = 1  # a li of lines\ny = 2  # Wei\n"
    assert anonymize(src, ["Li Wei"]) == "x = 1  # a li of lines\ny = 2\n"


def test_code_strings_hide_names_only_as_spelled():
    """``"max"`` is an argument when the roster has a Max; ``"Max Power"`` in code is hidden."""
    src = 'a = t.amax(dim=-1, mode="max")\nb = "Max Power"\n"""max and Max"""\n'
    out = anonymize(src, ["Max Power"])
    assert out == f'a = t.amax(dim=-1, mode="max")\nb = "{HIDDEN}"\n"""{HIDDEN} and {HIDDEN}"""\n'


def test_f_string_fields_are_code_and_stay():
    src = 'msg = f"shape of {tuple(w.shape)!r:>{width}} for /home/ann/{name}, {{shape}}"\n'
    out = anonymize(src, ["shape"])
    assert out == f'msg = f"{HIDDEN} of {{tuple(w.shape)!r:>{{width}}}} for {HIDDEN}{{name}}, {{{{{HIDDEN}}}}}"\n'

    def fields(source):
        return [ast.dump(n) for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FormattedValue)]

    assert len(fields(src)) == 3 and fields(out) == fields(src)


def test_a_drive_letter_needs_a_folder_name():
    src = 'a = "class C:\\n    pass"\nb = r"D:\\data\\ann"\n# saved in E:/Models/x.pt\n'
    assert anonymize(src) == f'a = "class C:\\n    pass"\nb = r"{HIDDEN}"\n\n'


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


def test_author_assignments_anywhere():
    src = "import os; __author__ = 'x'; y = 1\n__maintainer__: str = 'y'\nclass A:\n    __email__ = 'a@b.cd'\n"
    out = anonymize(src)
    ast.parse(out)
    assert out == "import os; pass; y = 1\n\nclass A:\n    pass\n"


def test_other_characters_before_a_statement_do_not_shift_it():
    """ast counts columns in UTF-8 bytes, tokenize in characters."""
    src = 'é = "ü"; __author__ = "Jane"  # √d\nx = 1  # Jané\n'
    out = anonymize(src, ["Jané"])
    assert out == 'é = "ü"; pass  # √d\nx = 1\n'


def test_a_source_that_does_not_parse_is_cleaned_line_by_line():
    src = (
        "def f(x:\n"
        "    y = '# not a comment jdoe42'  # jdoe42 wrote this\n"
        "    z = 2  # fine\n"
        '    __author__ = "jdoe42"\n'
        "    return '/home/jdoe/x'\n"
    )
    out = anonymize(src, ["jdoe42"])
    assert len(lines(out)) == len(lines(src))
    assert out == (f"def f(x:\n    y = '# not a comment {HIDDEN}'\n    z = 2  # fine\n\n    return '{HIDDEN}'\n")


def test_nothing_to_hide_changes_nothing():
    src = '"""Attention."""\nimport torch  # torch\n\ndef f(x):\n    return x @ x.mT  # a@b.mT\n'
    assert anonymize(src, ["Jane Doe"]) == src
    assert anonymize("", ["Jane"]) == ""


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
