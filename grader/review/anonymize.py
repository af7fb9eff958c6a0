"""What a reviewer may see of a solution: the code without the author's name, email or home folder.

Gradescope and codePost hide the student's name but not what the student wrote into the code;
Caesar ran an anonymize script over the chunks.  :func:`anonymize` does that for one source:

* a **comment** that names the author (any of ``names``, case-insensitive, or a part of one of
  them longer than 2 characters: ``"Jane Doe"`` also hides ``jane`` and ``doe``), holds an email
  address, an author line (``@author``, ``author:``, ``Author``, ``written by``, ``created by``)
  or a path of a user's folder (``/home/...``, ``/Users/...``, ``C:\\...``) is removed whole;
* in **docstrings and other string literals** email addresses, user paths and names become
  ``<hidden>``; the literal stays where it was.  In strings that are code (not docstrings or
  other bare string statements) a name is hidden only with the roster's spelling, case
  included, so that ``"max"`` stays an argument when the roster has a ``Max``;
* ``__author__``, ``__email__``, ``__credits__`` and ``__maintainer__`` assignments are removed.

Line numbers never change: a removed comment leaves its line (without trailing blanks), a
removed assignment leaves blank lines (or ``pass`` where the block would be empty), so the
line ranges of reviewers' comments point at the same code.  A source that parses still parses.
A source that does not parse is handled line by line: comments are found by a scan that skips
quoted text, and the rest of each line gets the string rules.
"""

import ast
import io
import re
import tokenize
from collections.abc import Collection

#: What hidden text becomes.
HIDDEN = "<hidden>"
#: Module attributes that name people; their assignments are removed.
AUTHOR_VARIABLES = frozenset({"__author__", "__email__", "__credits__", "__maintainer__"})

# at least 2 characters before the @ and no call after it, so that ``q@k.transpose(-2, -1)`` stays
EMAIL = re.compile(r"[\w.+-]{2,}@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b(?![(\[])")
# a user's folder and what follows it, up to a blank, a quote or a brace (of an f-string); a drive
# letter needs a name after it, so that the text ``C:\\n`` (C, colon, newline) is no path
USER_PATH = re.compile(
    r"(?:(?<![\w/])(?:/home|/Users|/root|/mnt|/media|/net|/afs|/scratch|/content/drive)/"
    r"|(?<![A-Za-z0-9])[A-Za-z]:(?:\\\\|[\\/])(?=[\w.$~-]{2})|~[\\/]|\\\\[\w.-]+\\|file:/+)"
    r"[^\s'\"`{}]*"
)
AUTHOR_LINE = re.compile(r"@author\b|\bauthors?\s*:|\b(?:written|created)\s+by\b", re.IGNORECASE)
AUTHOR_WORD = re.compile(r"\bAuthors?\b")  # capitalized, the word alone marks an author line
_RUN_OF_HIDDEN = re.compile(rf"{re.escape(HIDDEN)}(?:[ \t]+{re.escape(HIDDEN)})+")
_MIN_LENGTH = 3  # names and parts of names shorter than this are not searched (too many false hits)


def anonymize(source: str, names: Collection[str] = ()) -> str:
    """``source`` without what tells who wrote it (see the module docstring); the same number
    of lines, and the same code apart from the hidden text in string literals and the removed
    author assignments.  ``names`` are the author's names and ids (or the whole roster)."""
    any_case = _names_pattern(names, re.IGNORECASE)
    exact_case = _names_pattern(names, 0)
    try:
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, ValueError, tokenize.TokenError):
        return _by_lines(source, any_case, exact_case)
    return _by_tokens(source, tree, tokens, any_case, exact_case)


def redact(text: str, names: Collection[str] = ()) -> str:
    """Plain ``text`` (not code: a grader message, a file name) with email addresses, user paths
    and ``names`` (and their parts, any case) replaced by :data:`HIDDEN`."""
    return _hide(text, _names_pattern(names, re.IGNORECASE))


def _names_pattern(names: Collection[str], flags: int) -> re.Pattern[str] | None:
    """A regex for the names and their parts (longer than 2 characters) as whole words."""
    words = set()
    for name in names:
        name = name.strip()
        if not name:
            continue
        if len(name) >= _MIN_LENGTH:
            words.add(r"[ \t]+".join(re.escape(part) for part in name.split()))
        words |= {re.escape(part) for part in re.split(r"[\s._-]+", name) if len(part) >= _MIN_LENGTH}
    if not words:
        return None
    alternatives = "|".join(sorted(words, key=lambda w: (-len(w), w)))
    return re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", flags)


def _is_sensitive_comment(comment: str, names: re.Pattern[str] | None) -> bool:
    """Whether a comment gives the author away and goes."""
    return bool(
        EMAIL.search(comment)
        or USER_PATH.search(comment)
        or AUTHOR_LINE.search(comment)
        or AUTHOR_WORD.search(comment)
        or (names and names.search(comment))
    )


def _hide(text: str, names: re.Pattern[str] | None) -> str:
    """``text`` with email addresses, user paths and names replaced by :data:`HIDDEN`."""
    text = EMAIL.sub(HIDDEN, text)
    text = USER_PATH.sub(HIDDEN, text)
    if names is not None:
        text = names.sub(HIDDEN, text)
    return _RUN_OF_HIDDEN.sub(HIDDEN, text)  # "Jane Doe" by its parts: one <hidden>, not two


def _hide_literal(literal: str, names: re.Pattern[str] | None) -> str:
    """A string literal's source with :func:`_hide` applied to its content; when that would
    break the literal (an escape cut in two), the whole content becomes :data:`HIDDEN`, with
    the same line breaks."""
    prefix_end = len(literal) - len(literal.lstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    quote = literal[prefix_end : prefix_end + 3]
    if quote not in ('"""', "'''"):
        quote = literal[prefix_end : prefix_end + 1]
    head, content, tail = literal[: prefix_end + len(quote)], literal[prefix_end + len(quote) : -len(quote)], quote
    if "f" in head.lower():  # an f-string: its {expressions} are code and stay
        hidden = "".join(part if is_code else _hide(part, names) for part, is_code in _fstring_parts(content))
    else:
        hidden = _hide(content, names)
    if hidden == content:
        return literal
    candidate = head + hidden + tail
    try:
        ast.parse(candidate, mode="eval")
        return candidate
    except SyntaxError:
        newline = "\n" if len(quote) == 3 else "\\\n"
        return head + HIDDEN + newline * content.count("\n") + tail


def _fstring_parts(content: str) -> list[tuple[str, bool]]:
    """An f-string's content cut into ``(text, is_code)`` parts: the replacement fields
    ``{...}`` (with their nested brackets, strings and format specs) are code, the rest, ``{{``
    and ``}}`` included, is text."""
    parts: list[tuple[str, bool]] = []
    i = start = 0
    while i < len(content):
        if content.startswith(("{{", "}}"), i):
            i += 2
            continue
        if content[i] != "{":
            i += 1
            continue
        parts.append((content[start:i], False))
        depth, quote, j = 0, "", i
        while j < len(content):
            char = content[j]
            if quote:
                if char == "\\":
                    j += 1
                elif char == quote:
                    quote = ""
            elif char in "\"'":
                quote = char
            elif char in "{[(":
                depth += 1
            elif char in "}])":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        parts.append((content[i : j + 1], True))
        i = start = j + 1
    parts.append((content[start:], False))
    return parts


def _split(source: str) -> list[str]:
    """``source`` split after each ``\\n``, as :mod:`tokenize` and :mod:`ast` count lines."""
    parts = source.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


class _Positions:
    """Offsets into the source of (row, column) positions: :mod:`tokenize` counts columns in
    characters, :mod:`ast` in UTF-8 bytes."""

    def __init__(self, source: str):
        self.lines = _split(source)
        self.starts = [0, 0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def chars(self, row: int, col: int) -> int:
        """The offset of a :mod:`tokenize` position."""
        return self.starts[row] + col

    def bytes(self, row: int, col: int) -> int:
        """The offset of an :mod:`ast` position."""
        line = self.lines[row - 1] if row - 1 < len(self.lines) else ""
        return self.starts[row] + len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))

    def node(self, node: ast.stmt | ast.expr) -> tuple[int, int]:
        """The start and end offsets of an :mod:`ast` node."""
        end_row = node.end_lineno if node.end_lineno is not None else node.lineno
        end_col = node.end_col_offset if node.end_col_offset is not None else node.col_offset
        return self.bytes(node.lineno, node.col_offset), self.bytes(end_row, end_col)


def _by_tokens(
    source: str,
    tree: ast.Module,
    tokens: list[tokenize.TokenInfo],
    any_case: re.Pattern[str] | None,
    exact_case: re.Pattern[str] | None,
) -> str:
    """:func:`anonymize` for a source that parses: edits at token and statement positions."""
    where = _Positions(source)
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), never overlapping
    removed: list[tuple[int, int]] = []  # the author assignments
    prose: list[tuple[int, int]] = []  # docstrings and other bare string statements
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            prose.append(where.node(node))
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                for statement in block:
                    if _is_author_assignment(statement):
                        edits.append(_removal(source, where, statement, block))
                        removed.append(where.node(statement))

    def inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
        return any(a <= start and end <= b for a, b in spans)

    fstring_start = getattr(tokenize, "FSTRING_START", None)  # Python 3.12 splits f-strings
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    depth, fstring_from = 0, 0
    for token in tokens:
        start, end = where.chars(*token.start), where.chars(*token.end)
        if fstring_start is not None and token.type == fstring_start:
            fstring_from = start if depth == 0 else fstring_from
            depth += 1
        elif fstring_end is not None and token.type == fstring_end:
            depth -= 1
            if depth == 0 and not inside(removed, fstring_from, end):
                edits.append((fstring_from, end, _hide_literal(source[fstring_from:end], exact_case)))
        elif depth or inside(removed, start, end):
            continue
        elif token.type == tokenize.COMMENT and _is_sensitive_comment(token.string, any_case):
            line_start = where.starts[token.start[0]]
            edits.append((line_start + len(source[line_start:start].rstrip()), end, ""))
        elif token.type == tokenize.STRING:
            names = any_case if inside(prose, start, end) else exact_case
            edits.append((start, end, _hide_literal(token.string, names)))
    result = _apply(source, edits)
    try:
        ast.parse(result)
    except SyntaxError:  # not expected; never hand out what does not parse
        return _by_lines(source, any_case, exact_case)
    return result


def _is_author_assignment(statement: ast.stmt) -> bool:
    """``__author__ = ...`` and friends (also annotated, or several targets)."""
    if isinstance(statement, ast.Assign):
        targets: list[ast.expr] = list(statement.targets)
    elif isinstance(statement, ast.AnnAssign):
        targets = [statement.target]
    else:
        return False
    return any(isinstance(t, ast.Name) and t.id in AUTHOR_VARIABLES for t in targets)


def _removal(source: str, where: _Positions, statement: ast.stmt, block: list[ast.stmt]) -> tuple[int, int, str]:
    """The edit that removes ``statement``: blank lines when it has its lines to itself and its
    block keeps other statements, else ``pass`` in its place (same line count either way)."""
    start, end = where.node(statement)
    line_start = where.starts[statement.lineno]
    line_end = source.find("\n", end)
    rest = source[end : len(source) if line_end < 0 else line_end]
    breaks = source[start:end].count("\n")
    if not source[line_start:start].strip() and not rest.strip() and len(block) > 1:
        return line_start, end, "\n" * breaks
    return start, end, "pass" + "\n" * breaks


def _apply(source: str, edits: list[tuple[int, int, str]]) -> str:
    """``source`` with the edits made (from the end, so offsets stay right)."""
    for start, end, replacement in sorted(edits, reverse=True):
        source = source[:start] + replacement + source[end:]
    return source


def _by_lines(source: str, any_case: re.Pattern[str] | None, exact_case: re.Pattern[str] | None) -> str:
    """:func:`anonymize` for a source that does not parse: per line, a sensitive comment goes
    (found by a scan that skips quoted text), author assignments become blank and the rest of
    the line gets :func:`_hide` with the exact-case names."""
    lines = source.splitlines(keepends=True)
    out = []
    for line in lines:
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        if re.match(rf"\s*(?:{'|'.join(sorted(AUTHOR_VARIABLES))})\s*[:=]", body):
            out.append(ending)
            continue
        hash_at = _comment_start(body)
        code, comment = body[:hash_at], body[hash_at:]
        if comment and _is_sensitive_comment(comment, any_case):
            code, comment = code.rstrip(), ""
        out.append(_hide(code, exact_case) + comment + ending)
    return "".join(out)


def _comment_start(line: str) -> int:
    """Where the comment of a line starts (``len(line)`` if none), skipping quoted text."""
    quote = ""
    i = 0
    while i < len(line):
        char = line[i]
        if quote:
            if char == "\\":
                i += 1
            elif line.startswith(quote, i):
                i += len(quote) - 1
                quote = ""
        elif line.startswith(('"""', "'''"), i):
            quote = line[i : i + 3]
            i += 2
        elif char in "\"'":
            quote = char
        elif char == "#":
            return i
        i += 1
    return len(line)
