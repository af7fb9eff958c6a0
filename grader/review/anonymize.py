"""What a reviewer may see of a solution: the code without who wrote it.

Gradescope and codePost hide the student's name but not what the student wrote into the code;
Caesar ran an anonymize script over the chunks.  This module does that for one source, and
needs no roster to do it: :func:`identity_of` harvests an :class:`Identity` from the
submission's id and folder name (``jane_doe-20231234``, ``kim.minsu``) and from the text of the
submission itself:

* ``__author__``, ``__email__``, ``__credits__`` and ``__maintainer__`` values;
* author lines (``Author: Jane Doe``, ``written by``, ``@author jdoe``, ``Name:``, ``이름:``,
  ``작성자:``), student-number lines (``학번:``, ``student number``, ``ID:``);
* email addresses, home folders in paths (``/home/jdoe``, ``/Users/janedoe``,
  ``C:\\Users\\jane``), personal URLs (``github.com/janedoe``, Kaggle, Colab, Drive, blogs) and
  ``@handles``;
* other people's names after ``thanks to``, ``help from``, ``discussed with``, ``cc`` ... and
  Korean names before ``님``, ``씨``, ``학생``, ``조교`` or after ``도움:``.

A roster adds names (``roster`` for the author, ``others`` for the rest of the class); it is
not needed.  :func:`anonymize` then hides the identity in a source, :func:`redact` in plain
text (grader messages, exception text, file names), by the same rules:

* only **whole tokens** are replaced, never a substring of unrelated code: a name part inside a
  word is no name (``Doe`` in ``Does``);
* a name part that is also a common code word (:data:`COMMON_WORDS`, or an identifier of the
  source) is hidden only in the name's own capitalization (``Max``, not ``max``: the argument
  ``"max"`` stays when the email is ``max.mean@x.edu``); other parts of three letters or more
  in any case;
* in **comments, docstrings and other bare strings** (prose) and in **string literals** (code),
  emails, user paths, names, handles and student numbers (and any run of 7 to 12 digits)
  become ``<hidden>``; a path component or file name holding a name part is hidden whole, and
  so is a personal URL (a profile, repository, notebook, drive or blog), while other URLs
  (pytorch.org, arxiv.org, github.com/pytorch, ...) stay unless they hold the identity.
  Comments are never removed: ``# Author: Jane Doe`` becomes ``# Author: <hidden>``.  Other
  people's names, and unknown ``@word`` handles, are hidden in prose only;
* **identifiers** (variables, functions, attributes the student named) whose snake_case or
  camelCase parts hold a name part or handle are renamed consistently over the whole source,
  the part becoming ``anon`` (``jdoe_debug`` -> ``anon_debug``, ``janeAttention`` ->
  ``anonAttention``); keywords, builtins and imported names never change.  :func:`redact` renames
  them the same way, so that ``NameError: name 'jdoe_debug' ...`` reads ``anon_debug`` there
  too.  A numeric literal equal to the author's student number becomes ``0``;
* ``__author__`` and friends are removed.

Line numbers never change: a removed assignment leaves blank lines (or ``pass`` where the block
would be empty), so the line ranges of reviewers' comments point at the same code.  A source
that parses still parses.  A source that does not parse is handled line by line: a scan that
follows quotes (triple-quoted ones over lines) tells code, strings and comments apart.
"""

import ast
import builtins
import io
import keyword
import re
import tokenize
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, fields

#: What hidden text becomes.
HIDDEN = "<hidden>"
#: What a name part inside an identifier becomes (``jdoe_debug`` -> ``anon_debug``).
ANON = "anon"
#: Module attributes that name people; their assignments are removed.
AUTHOR_VARIABLES = frozenset({"__author__", "__email__", "__credits__", "__maintainer__"})

_BUILTIN_NAMES = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)

#: Words that are code (Python, torch and numpy vocabulary, the exercises' words) or plain
#: English: a name part that is one of them is hidden only in the name's capitalization.
COMMON_WORDS = frozenset(
    {word.lower() for word in _BUILTIN_NAMES}
    | set(
        """
        torch nn functional numpy np math scipy tensor tensors array arrays module modules layer layers
        linear conv conv1d conv2d embedding embeddings dropout norm layernorm batchnorm softmax sigmoid
        logsigmoid tanh relu gelu silu elu exp log sqrt max min mean sum prod std var amax amin argmax
        argmin topk sort cat stack split chunk view reshape transpose permute squeeze unsqueeze expand
        repeat gather scatter masked fill where einsum matmul matmuls bmm mm dot cross outer clamp clip
        abs sign pow zeros zero ones one empty full arange linspace rand randn randint eye tril triu diag
        dim dims axis axes shape shapes size sizes length lengths batch seq step steps mask masks key keys
        query queries value values head heads gate gates cell cells hidden input inputs output outputs
        weight weights bias biases scale scales scaled scores score logits logit attention attn proj
        projection projections embed model models state states grad grads loss losses eps inf nan
        device cuda cpu gpu dtype float double half long bool int item items detach backward forward init
        param params parameter parameters optim optimizer adam adamw sgd lr epoch epochs train training
        eval test tests valid validation data dataset datasets loader sample samples noise prior posterior
        latent encoder decoder recon reconstruction kl elbo vae gaussian normal bernoulli categorical
        mu sigma logvar variance variances reparameterize reparameterization lstm gru rnn recurrent cell
        forget candidate prev previous next sequence sequences token tokens vocab position positions
        positional encoding sinusoidal sin cos sine cosine angle causal padding padded pad merge multi
        multihead mha sdpa product transformer block blocks feature features channel channels pixel
        pixels row rows column columns entry entries index indices number numbers count counts total
        table graph node nodes edge edges parent parents child children factor factors joint markov bayes
        bayesian mahalanobis entropy distribution distributions divergence likelihood objective ratio
        kernel kernels net network python pytorch jupyter colab kaggle github gitlab google notebook
        debug info warning error errors print log logs file files path paths dir folder code solution
        solutions exercise exercises assignment assignments homework lab project final module main src
        student students team group user users submission anon anonymous copy backup version todo fixme
        note notes example examples helper helpers util utils tmp temp test result results out buf x y z
        the and for but not nor yet you your yours are was were been being has have had having does did
        doing done this that these those they them their there here then than when what which while who
        whom whose why how all any both each every few many more most much other some such only own same
        very just also too again once ever never always often still even well back after before above
        below under over into onto from with within without about against among between through during
        until upon off its our ours out per via can could may might must shall should will would need
        needs use used uses using make makes made get gets got give gives given take takes took keep
        keeps kept let lets see seen look looks like first last new old big small good bad best better
        right left long short high low top bottom end ends start starts begin stop run runs call calls
        return returns raise raises yes yeah okay fine work works working thing things way ways part
        parts case cases point points place time times day days week year years hand hands word words
        name names line lines page pages rule rules trick tricks idea ideas help helps helped thanks
        thank please sorry hello world someone something nothing everything anyone everyone nobody me
        my mine myself we us him her his hers she he it itself themselves what's it's don't can't
        park song moon rose mark bill grace hope joy will young sun gold king may june april august
        alpha beta gamma delta epsilon zeta eta theta iota kappa lambda rho tau phi chi psi omega
        """.split()
    )
)

_GENERIC_USERS = frozenset(
    """
    user users username yourname your_name name me you root admin administrator ubuntu runner vscode jovyan
    colab content shared public default guest student students work workspace data dev home pi codespace
    codespaces app nobody ec2-user local mnt drive mydrive desktop documents downloads projects tmp temp
    staff info noreply no-reply support contact hello help ta tas instructor course office webmaster team
    example test
    """.split()
)
_TAGS = frozenset(
    """
    param parameter arg args argument return returns raise raises rtype type author see note todo fixme
    deprecated version since example override overload abstractmethod dataclass cached_property lru_cache
    cache wraps pytest fixture jit script compile no_grad inference_mode njit vectorize setter getter
    deleter everyone here channel staticmethod classmethod property contextmanager functools unittest
    """.split()
)
_KNOWN_ORGS = frozenset(
    """
    pytorch python numpy scipy huggingface openai google google-research deepmind facebookresearch
    microsoft tensorflow keras-team scikit-learn d2l-ai karpathy harvardnlp labmlai lucidrains jax-ml
    pandas-dev matplotlib jupyter ipython pytorch-labs nvidia apple meta-llama features topics orgs
    marketplace about pricing login settings search explore sponsors collections trending
    """.split()
)
# at least 2 characters before the @ and no call after it, so that ``q@k.transpose(-2, -1)`` stays
EMAIL = re.compile(r"[\w.+-]{2,}@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b(?![(\[])")
# a user's folder and what follows it, up to a blank, a quote or a brace (of an f-string); a drive
# letter needs a name after it, so that the text ``C:\\n`` (C, colon, newline) is no path
USER_PATH = re.compile(
    r"(?:(?<![\w/])(?:/home|/Users|/root|/mnt|/media|/net|/afs|/scratch|/content/drive)/"
    r"|(?<![A-Za-z0-9])[A-Za-z]:(?:\\\\|[\\/])(?=[\w.$~-]{2})|~[\\/]|\\\\[\w.-]+\\|file:/+)"
    r"[^\s'\"`{}]*"
)
# the user name of a home folder
_HOME = re.compile(
    r"(?:(?<![\w/])(?:/home|/Users|/u|/scratch|/nfs/home|/mnt/[a-z]/Users)/"
    r"|(?<![A-Za-z0-9])[A-Za-z]:(?:\\\\|\\|/)(?:Users|Documents and Settings)(?:\\\\|\\|/))"
    r"(?P<user>[\w.$-]+)",
    re.IGNORECASE,
)
_PERSONAL_HOSTS = r"github\.com|gitlab\.com|github\.io|kaggle\.com|linkedin\.com|velog\.io|tistory\.com"
_URL = re.compile(
    r"(?:\b(?:https?|ftp)://|\bwww\.|(?<![\w@./-])(?=(?:[\w-]+\.)*(?:"
    + _PERSONAL_HOSTS
    + r"|colab\.research\.google\.com|drive\.google\.com|docs\.google\.com|blog\.naver\.com)/))"
    r"[^\s'\"<>`{}|\\^]+"
)
# ``@handle`` in prose: not an email (a word character before the @), not ``q@k``, not a
# decorator (``@torch.no_grad()``, ```@seed```), not a placeholder (``@PIP@``)
_AT_HANDLE = re.compile(r"(?<![\w@.+`-])@(?P<handle>[^\W\d][\w-]{1,38})(?![\w@`-]|\.\w|\()")
_AUTHOR_CUE = re.compile(
    r"(?:(?P<strong>@author\b|\bauthors?\s*[:=]|\bauthor\(s\)\s*:?|\bmaintainer\s*[:=]|\bcontact\s*[:=]"
    r"|\b(?:written|created|coded|made|implemented|developed|maintained|modified|submitted|authored)\s+by\b"
    r"(?:\s*:(?=\s))?|\bby\s*:(?=[ \t]))|(?P<weak>\b(?:full\s+|student\s+|your\s+)?name\s*[:=]|\bAuthors?\b))"
    r"[ \t]*(?=(?P<rest>[^\n]*))",
    re.IGNORECASE,
)
_OTHER_CUE = re.compile(
    r"(?:\bthanks?\s+(?:to\s+|you\s+)?|\bthank\s+you\s+|\bhelp(?:ed)?\s+(?:from|of|by)\s+|\bdiscussed\s+(?:\w+\s+)?with\s+"
    r"|\bworked\s+(?:on\s+\w+\s+)?with\s+|\btogether\s+with\s+|\bcollaborat\w*\s+with\s+|\bpair(?:ed)?\s+with\s+"
    r"|\bcredits?\s+(?:to\s+|:\s*)|\bcc\s*:?\s+|\breviewed\s+by\s+|\bcourtesy\s+of\s+|\bideas?\s+(?:from|of)\s+"
    r"|(?P<weak>\bwith\s+))"
    r"(?=(?P<rest>[^\n]*))",
    re.IGNORECASE,
)
_NUMBER_CUE = re.compile(
    r"(?:학번|\bstudent\s*(?:number|no\.?|num|id|#)|\bmatric\w*\s*(?:number|no\.?)?|\bs/n\b|\bid\b)"
    r"\s*[:#=.]?\s*(?:is\s+)?(?P<number>[A-Za-z]?\d{5,12}[A-Za-z]?)(?!\w)",
    re.IGNORECASE,
)
_HANGUL_NAME = "[가-힣]{2,4}"
_KOREAN_AUTHOR = re.compile(rf"(?:이름|작성자|성명|제출자)\s*[:：=]?\s*(?P<name>{_HANGUL_NAME})(?![가-힣])")
_KOREAN_OTHER = re.compile(
    rf"(?:도움|도와준\s*사람|팀원|조원|참고)\s*[:：=]\s*(?P<name>{_HANGUL_NAME})(?![가-힣])"
    rf"|(?<![가-힣])(?P<before>{_HANGUL_NAME})\s?(?:님|씨|학생|조교|교수|선배|선생)"
)
_KOREAN_ROLES = frozenset("조교 교수 학생 선배 선생 친구 팀원 조원 도움 작성자 이름 성명 제출자 여러분 모두".split())
_STUDENT_NUMBER = re.compile(r"(?<![\w.])\d{7,12}(?!\w|\.\d)")
# a path: words between slashes, or backslashes that are no escape (``\n`` is a line break)
_SEPARATOR = r"(?:/|\\\\|\\(?![nrtabfv0'\"xuUN\\]))"
_PATHISH = re.compile(rf"(?:[A-Za-z]:)?[\w.~$-]*(?:{_SEPARATOR}+[\w.~$-]+)+{_SEPARATOR}?|[\w.~$-]+{_SEPARATOR}+")
_FILE_NAME = re.compile(
    r"(?<![\w.-])[\w-]+(?:\.[\w-]+)*\.(?:py|ipynb|log|txt|csv|tsv|json|pt|pth|ckpt|bin|npy|npz|pkl|pickle|h5"
    r"|png|jpe?g|gif|pdf|zip|tar|gz|md|ya?ml|toml|out|err)(?![\w.])"
)
# an escape in a string literal, skipped whole so that ``\nDoe`` is the word ``Doe``; else a word
_ESCAPE_OR_WORD = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^}]*\}|.)|(\w+)", re.DOTALL)
_RUN_OF_HIDDEN = re.compile(rf"{re.escape(HIDDEN)}(?:[ \t]*[._-]?[ \t]*{re.escape(HIDDEN)})+")
_AUTHOR_ASSIGNMENT_LINE = re.compile(rf"\s*(?:{'|'.join(sorted(AUTHOR_VARIABLES))})\s*[:=]")
_MIN_LENGTH = 3  # names and parts of names shorter than this are not searched (too many false hits)


@dataclass(frozen=True)
class Identity:
    """What identifies one author (and, for prose, other people): harvested by :func:`identity_of`.

    Names and parts keep their spelling; handles and emails are lowercase."""

    #: the author's full names ("Jane Doe", "김민수")
    names: frozenset[str] = frozenset()
    #: the author's name parts (3 letters or more; Hangul names and given names)
    parts: frozenset[str] = frozenset()
    #: user names, handles, ids and email local parts ("jdoe", "janedoe", "jane_doe-20231234")
    handles: frozenset[str] = frozenset()
    #: email addresses
    emails: frozenset[str] = frozenset()
    #: student numbers ("20231234", "A0123456X")
    numbers: frozenset[str] = frozenset()
    #: other people's full names, name parts and ids: hidden in prose
    other_names: frozenset[str] = frozenset()
    other_parts: frozenset[str] = frozenset()
    other_handles: frozenset[str] = frozenset()
    #: the identifiers of the author's sources: common words, and the names renamed alike everywhere
    code_words: frozenset[str] = frozenset()

    def __or__(self, other: "Identity") -> "Identity":
        """Both identities in one."""
        return Identity(**{f.name: getattr(self, f.name) | getattr(other, f.name) for f in fields(self)})


def identity_of(
    ident: str,
    *,
    folder_name: str = "",
    sources: Sequence[str] = (),
    roster: Sequence[str] = (),
    others: Sequence[str] = (),
) -> Identity:
    """Harvest the author's identity (see the module docstring): from the submission id and
    folder name (``jane_doe-20231234``, ``kim.minsu``), from every source text of the submission
    (author variables and lines, emails, home folders, personal URLs and ``@handles``, student
    numbers, names after cue words), plus ``roster`` (this author's name, email, ... as a roster
    lists them) and ``others`` (everyone else in the class, e.g. the whole roster and all
    submission ids: their names are hidden in prose)."""
    harvest = _Harvest()
    harvest.id_like(ident)
    harvest.id_like(folder_name)
    for source in sources:
        harvest.source(source)
    for entry in roster:
        harvest.person(entry)
    for entry in others:
        harvest.person(entry, other=True)
    return harvest.identity()


def anonymize(source: str, identity: Identity | Collection[str] = ()) -> str:
    """``source`` without what tells who wrote it (see the module docstring): the same number of
    lines, and the same code apart from hidden text, renamed identifiers and the removed author
    assignments; a source that parsed still parses.  ``identity`` is the author's
    :class:`Identity` (what the source itself gives away is added), or, as before, a collection
    of the author's names and ids (read like a roster's)."""
    parsed = _parse(source)
    harvest = _Harvest()
    harvest.source(source, parsed)
    found = _as_identity(identity) | harvest.identity()
    # a lone carriage return ends a line for ast, not for tokenize: their positions would disagree
    if parsed is None or re.search(r"\r(?!\n)", source):
        return _by_lines(source, found)
    return _by_tokens(source, *parsed, found)


def redact(text: str, identity: Identity | Collection[str] = ()) -> str:
    """Plain ``text`` (not code: a grader message, exception text, a file name) scrubbed with the
    rules of prose; identifiers of the author's code are renamed as :func:`anonymize` renames
    them (``name 'jdoe_debug' is not defined`` -> ``name 'anon_debug' ...``)."""
    harvest = _Harvest()
    harvest.text(text, prose=True)
    found = _as_identity(identity) | harvest.identity()
    return _Scrubber(found, found.code_words, ()).prose(text)


_Parsed = tuple[ast.Module, list[tokenize.TokenInfo]]


def _parse(source: str) -> _Parsed | None:
    """The syntax tree and the tokens of ``source``; ``None`` when it does not parse."""
    try:
        return ast.parse(source), list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, ValueError, tokenize.TokenError):
        return None


def _as_identity(identity: Identity | Collection[str]) -> Identity:
    """An :class:`Identity`, or one made of a roster-like collection of names."""
    if isinstance(identity, Identity):
        return identity
    if isinstance(identity, str):
        identity = [identity]
    return identity_of("", roster=[name for name in identity if isinstance(name, str)])


# -- words ---------------------------------------------------------------------------------


def _split_word(word: str) -> list[tuple[int, int]]:
    """The spans of the parts of an identifier or word: snake_case, camelCase, letters and digits
    (``janeAttention`` -> ``jane``, ``Attention``; ``jdoe42`` -> ``jdoe``, ``42``)."""
    spans = []
    i, n = 0, len(word)
    while i < n:
        char = word[i]
        if not char.isalnum():
            i += 1
            continue
        j = i + 1
        if char.isdigit():
            while j < n and word[j].isdigit():
                j += 1
        elif char.isupper() and j < n and word[j].isupper():
            while j < n and word[j].isupper():
                j += 1
            if j < n and word[j].islower():
                j -= 1  # HTTPServer: the last capital starts the next part
        else:
            while j < n and word[j].isalpha() and not word[j].isupper() and not word[j].isdigit():
                j += 1
        spans.append((i, j))
        i = j
    return spans


def _pieces(word: str) -> list[str]:
    """The parts of a word (see :func:`_split_word`)."""
    return [word[a:b] for a, b in _split_word(word)]


def _is_hangul(word: str) -> bool:
    """Whether ``word`` is Hangul syllables only (a Korean name)."""
    return bool(word) and all("가" <= char <= "힣" for char in word)


def _title(word: str) -> str:
    """A name part in a name's capitalization: ``jane`` -> ``Jane``; ``McDonald`` stays."""
    return word[:1].upper() + word[1:] if word.islower() else word


# -- harvesting ----------------------------------------------------------------------------


class _Harvest:
    """Collects an :class:`Identity` from ids, roster entries and texts."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.parts: set[str] = set()
        self.handles: set[str] = set()
        self.emails: set[str] = set()
        self.numbers: set[str] = set()
        self.other_names: set[str] = set()
        self.other_parts: set[str] = set()
        self.other_handles: set[str] = set()
        self.code_words: set[str] = set()
        self.common: frozenset[str] = COMMON_WORDS

    def identity(self) -> Identity:
        """What was collected."""
        return Identity(
            names=frozenset(self.names),
            parts=frozenset(self.parts),
            handles=frozenset(self.handles),
            emails=frozenset(self.emails),
            numbers=frozenset(self.numbers),
            other_names=frozenset(self.other_names),
            other_parts=frozenset(self.other_parts),
            other_handles=frozenset(self.other_handles),
            code_words=frozenset(self.code_words),
        )

    def name(self, words: Sequence[str], other: bool = False) -> None:
        """A person's name, word by word (``["Jane", "Q.", "Doe"]``)."""
        words = [w.strip(",;:'\"()<>[]") for w in words]
        words = [w.rstrip(".") if len(w.rstrip(".")) > 1 else w for w in words if w.strip(".")]
        if not words:
            return
        if len(words) >= 2 and len(" ".join(words)) >= _MIN_LENGTH:
            (self.other_names if other else self.names).add(" ".join(words))
        latin = []
        for word in words:
            for part in re.split(r"[-.'’_]+", word):
                if _is_hangul(part) and len(part) >= 2:
                    (self.other_parts if other else self.parts).add(part)
                    if len(part) >= 3:  # the given name: 김민수 -> 민수
                        (self.other_parts if other else self.parts).add(part[-2:])
                elif part.isalpha() and len(part) >= _MIN_LENGTH and part.lower() not in _GENERIC_USERS:
                    (self.other_parts if other else self.parts).add(_title(part))
                    latin.append(part.lower())
                elif part.isalpha() and part:
                    latin.append(part.lower())
        latin = [p for p in latin if p]
        if not other and len(latin) >= 2:
            first, last = latin[0], latin[-1]
            initials = "".join(p[0] for p in latin[:-1])
            for derived in ("".join(latin), "".join(reversed(latin)), first[0] + last, initials + last):
                if len(derived) >= 4:
                    self.handles.add(derived)

    def id_like(self, text: str, other: bool = False) -> None:
        """An id, a folder or user name, an email's local part: ``jane_doe-20231234``, ``jdoe42``."""
        text = text.strip()
        if text.lower().endswith(".zip"):
            text = text[:-4]
        if not text or not any(char.isalnum() for char in text):
            return
        whole = text.lower()
        if len(whole) >= _MIN_LENGTH and whole not in _GENERIC_USERS and not whole.isdigit():
            (self.other_handles if other else self.handles).add(whole)
        pieces = [p for chunk in re.split(r"[\s._+@-]+", text) for p in _pieces(chunk)]
        letters = [p for p in pieces if p.isalpha() and p.lower() not in _GENERIC_USERS]
        for piece in pieces:
            if piece.isdigit() and len(piece) >= 5 and not other:
                self.numbers.add(piece)
        if len(letters) >= 2:
            self.name(letters, other)
        elif letters and len(letters[0]) >= _MIN_LENGTH:
            (self.other_handles if other else self.handles).add(letters[0].lower())

    def email(self, address: str, other: bool = False) -> None:
        """An email address: hidden whole, its local part read as an id."""
        self.emails.add(address.lower())
        self.id_like(address.split("@")[0], other)

    def url(self, url: str, other: bool = False) -> None:
        """A URL: a personal one gives a handle."""
        personal, handle = _url_owner(url)
        if personal and handle:
            self.id_like(handle, other)

    def person(self, text: str, other: bool = False) -> None:
        """A free-form roster entry or author value: ``Jane Doe <jane@x.edu>``, ``jdoe42``,
        ``https://github.com/janedoe``, ``20231234``, ``김민수``."""
        token = text.strip()
        if token and not re.search(r"[\s@<>(),;]|://", token) and not _is_hangul(token):
            if re.fullmatch(r"[A-Za-z]?\d{5,12}[A-Za-z]?", token):
                if not other:
                    self.numbers.add(token)
            else:
                self.id_like(token, other)
            return
        for match in EMAIL.finditer(text):
            self.email(match.group(), other)
        text = EMAIL.sub(" ", text)
        for match in _URL.finditer(text):
            self.url(_trim_url(match.group()), other)
        text = _URL.sub(" ", text)
        for match in _AT_HANDLE.finditer(text):
            self.id_like(match.group("handle"), other)
        text = _AT_HANDLE.sub(" ", text)
        for match in re.finditer(r"(?<!\w)[A-Za-z]?\d{5,12}[A-Za-z]?(?!\w)", text):
            if not other:
                self.numbers.add(match.group())
        text = re.sub(r"(?<!\w)[A-Za-z]?\d{5,12}[A-Za-z]?(?!\w)", " ", text)
        for chunk in re.split(r"\s*(?:[,;/&|<>()\[\]\"]|\band\b)\s*", text):
            words = chunk.split()
            if len(words) == 1 and not _is_hangul(words[0]):
                self.id_like(words[0], other)
            elif words:
                self.name(words, other)

    def source(self, source: str, parsed: "_Parsed | None" = None) -> None:
        """A source of the submission: its author variables, comments and strings (or, when it
        does not parse, its comments and strings as a scan finds them) and its identifiers.
        ``parsed``: what :func:`_parse` made of it, when the caller has it already."""
        parsed = parsed or _parse(source)
        if parsed is None:
            segments = [seg for _, line in _scan(source) for seg in line]
            identifiers = {
                word
                for kind, text in segments
                if kind == "code"
                for word in re.findall(r"[^\W\d]\w*", text)
                if word not in _BUILTIN_NAMES
            }
            texts = [text for kind, text in segments if kind in ("comment", "string", "prose")]
            values = [
                value
                for line in source.splitlines()
                if _AUTHOR_ASSIGNMENT_LINE.match(line)
                for value in re.findall(r"([\"'])(.*?)\1", line)
            ]
            author_values = [text for _, text in values]
        else:
            tree, tokens = parsed
            identifiers = _identifiers(tree)
            texts = [t.string for t in tokens if t.type in (tokenize.COMMENT, tokenize.STRING)]
            author_values = [
                value.value
                for node in ast.walk(tree)
                if isinstance(node, ast.Assign | ast.AnnAssign)
                and _is_author_assignment(node)
                and node.value is not None
                for value in ast.walk(node.value)
                if isinstance(value, ast.Constant) and isinstance(value.value, str)
            ]
        self.code_words |= identifiers
        self.common = self.common | {word.lower() for word in identifiers}
        for value in author_values:
            self.person(value)
        for text in texts:
            self.text(text, prose=True)

    def text(self, text: str, prose: bool) -> None:
        """A comment, string or plain text: emails, personal URLs, home folders, author and
        student-number lines, other people after cue words, ``@handles``."""
        for match in EMAIL.finditer(text):
            self.email(match.group())
        for match in _URL.finditer(text):
            self.url(_trim_url(match.group()))
        for match in _HOME.finditer(text):
            user = match.group("user").strip(".")
            if user.lower() not in _GENERIC_USERS and not user.startswith("$") and len(user) >= 2:
                self.id_like(user)
        for match in _AUTHOR_CUE.finditer(text):
            strong = match.group("strong") is not None
            for words in _cue_names(match.group("rest"), self.common, handles=strong):
                if len(words) == 1 and not words[0][:1].isupper() and not _is_hangul(words[0]):
                    self.id_like(words[0])
                else:
                    self.name(words)
        for match in _NUMBER_CUE.finditer(text):
            self.numbers.add(match.group("number"))
        for match in _OTHER_CUE.finditer(text):
            weak = match.group("weak") is not None
            for words in _cue_names(match.group("rest"), self.common, handles=False, weak=weak):
                if weak and len(words) < 2:
                    continue  # "with Landlock", "with Dask": a single word after "with" is too often code
                self.name(words, other=True)
        for match in _KOREAN_AUTHOR.finditer(text):
            if match.group("name") not in _KOREAN_ROLES:
                self.name([match.group("name")])
        for match in _KOREAN_OTHER.finditer(text):
            name = match.group("name") or match.group("before")
            if name and name not in _KOREAN_ROLES:
                self.name([name], other=True)
        if prose:
            for match in _AT_HANDLE.finditer(text):
                handle = match.group("handle")
                if handle.lower() not in _TAGS and handle.lower() not in self.common:
                    self.id_like(handle)


def _cue_names(rest: str, common: Collection[str], handles: bool, weak: bool = False) -> list[list[str]]:
    """The names at the start of ``rest`` (what follows a cue word): capitalized words (or a
    Hangul name), several names split by commas or ``and``; with ``handles``, a lone lowercase
    word is a handle (``written by jdoe42``).  After a ``weak`` cue (``with``) one word is a name
    only when nothing follows it (``with Adam`` is no name when ``Adam`` is code, ``with
    Gaussian noise`` none either)."""
    rest = re.split(r"[<(\[{|\"`#]|\s[-–—]\s|:\s|(?<![A-Z])\.(?:\s|$)|https?://", rest)[0]
    names: list[list[str]] = []
    for chunk in re.split(r"\s*(?:[,;/&]|\band\b|\bund\b|\b그리고\b)\s*", rest):
        raw = chunk.split()
        words: list[str] = []
        for word in raw[:4]:
            word = re.sub(r"(?:'s|’s|[.,:;!?'’])+$", "", word) if not re.fullmatch(r"[A-Z]\.", word) else word
            low = word.lower()
            if _is_hangul(word) and 2 <= len(word) <= 4 and word not in _KOREAN_ROLES:
                words.append(word)
                break
            if re.fullmatch(r"[A-Z]\.", word) and words:
                words.append(word)
            elif word[:1].isupper() and word.replace("-", "").replace("'", "").isalpha() and low not in common:
                if len(word) >= 2 and (not word.isupper() or len(word) <= 12):
                    words.append(word)
                else:
                    break
            elif (
                handles
                and not names
                and not words
                and len(raw) == 1
                and re.fullmatch(r"[a-z][a-z0-9_.-]{2,}", word)
                and low not in common
            ):
                words.append(word)
                break
            else:
                break
        whole = len(words) == len(raw)
        if words and (not weak or len(words) >= 2 or whole):
            names.append(words)
        if not whole:
            break
    return names


def _identifiers(tree: ast.AST) -> set[str]:
    """Every name the code uses or defines (variables, attributes, arguments, functions, classes)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.keyword) and node.arg:
            found.add(node.arg)
        elif isinstance(node, ast.alias):
            found |= set(node.name.split(".")) | ({node.asname} if node.asname else set())
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= set(node.module.split("."))
    return found


def _imported(tree: ast.AST) -> set[str]:
    """The names that come from imports (modules and what is taken from them, not aliases)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.alias):
            found |= set(node.name.split("."))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= set(node.module.split("."))
    return found


def _trim_url(url: str) -> str:
    """A URL without the punctuation of the sentence around it."""
    while url and url[-1] in ".,;:!?'\")]":
        if url[-1] in ")]" and url.count("(" if url[-1] == ")" else "[") >= url.count(url[-1]):
            break
        url = url[:-1]
    return url


def _url_owner(url: str) -> tuple[bool, str]:
    """Whether a URL is personal (a profile, repository, notebook, drive or blog of a person)
    and the handle it names (``""`` when none)."""
    bare = re.sub(r"^(?:[a-z]+://)?(?:www\.)?", "", url, flags=re.IGNORECASE)
    host, _, path = bare.partition("/")
    host = host.lower().split(":")[0]
    parts = [p for p in re.split(r"[/?#]", path) if p]
    first = parts[0] if parts else ""

    def user(name: str) -> tuple[bool, str]:
        if not name or name.lower() in _KNOWN_ORGS:
            return False, ""
        return True, name.lstrip("@~")

    if host.endswith(".github.io"):
        return user(host[: -len(".github.io")])
    if host in ("github.com", "gitlab.com", "gist.github.com", "raw.githubusercontent.com", "bitbucket.org"):
        return user(first)
    if host == "kaggle.com":
        if first in ("code", "datasets", "models") and len(parts) > 1:
            return user(parts[1])
        if first in ("competitions", "c", "discussions", "learn", "docs", "discussion"):
            return False, ""
        return user(first)
    if host == "colab.research.google.com":
        if first == "github" and len(parts) > 1:
            personal, handle = user(parts[1])
            return personal, handle
        return True, ""
    if host in ("drive.google.com", "docs.google.com", "notion.so") or host.endswith((".notion.site", ".tistory.com")):
        return True, host.split(".")[0] if host.endswith(".tistory.com") else ""
    if host in ("linkedin.com", "kr.linkedin.com") and first == "in" and len(parts) > 1:
        return user(parts[1])
    if host in ("twitter.com", "x.com", "instagram.com", "facebook.com", "velog.io", "medium.com", "blog.naver.com"):
        return user(first)
    if host.endswith(".medium.com"):
        return user(host.split(".")[0])
    return False, ""


# -- scrubbing -----------------------------------------------------------------------------


class _Scrubber:
    """Hides an :class:`Identity` in prose and string literals and renames identifiers."""

    def __init__(self, identity: Identity, identifiers: Collection[str], fixed: Collection[str]):
        self.identity = identity
        common = COMMON_WORDS | {word.lower() for word in identifiers} | {w.lower() for w in identity.code_words}
        any_case: set[str] = set()  # author words hidden in any case
        exact: set[str] = set()  # author words hidden only as spelled
        for part in identity.parts:
            if _is_hangul(part):
                continue
            if part.lower() in common:
                exact |= {part, _title(part)} - {part.lower()}
            else:
                any_case.add(part.lower())
        for handle in identity.handles:
            if len(_split_word(handle)) > 1 or not handle.isalnum():
                continue  # an id with separators: a whole token (``self.whole``)
            if handle in common:
                exact.add(_title(handle))
            else:
                any_case.add(handle)
        self.any_case = frozenset(any_case)
        self.exact = frozenset(exact)
        # the parts that make an identifier the author's (jdoe_debug): single pieces only
        self.identity_pieces = frozenset(w for w in any_case if len(_split_word(w)) == 1)
        self.hangul = frozenset(p for p in identity.parts | identity.names if _is_hangul(p))
        self.other_any = frozenset(
            h for h in identity.other_handles if h.isalnum() and len(_split_word(h)) == 1 and h not in common
        )
        self.other_exact = frozenset(
            form
            for p in identity.other_parts
            if not _is_hangul(p) and p.lower() not in common
            for form in (p, _title(p), p.upper())
        )
        other_hangul = frozenset(p for p in identity.other_parts | identity.other_names if _is_hangul(p))
        whole = [h for h in identity.handles if len(_split_word(h)) > 1 or not h.isalnum()]
        other_whole = [h for h in identity.other_handles if len(_split_word(h)) > 1 or not h.isalnum()]
        names = [n for n in identity.names if not _is_hangul(n)]
        other_names = [n for n in identity.other_names if not _is_hangul(n)]
        self.whole = _alternatives(whole, [_name_regex(n) for n in names])
        self.other_whole = _alternatives(other_whole, [_name_regex(n) for n in other_names])
        self.hangul_pattern = _hangul_pattern(self.hangul)
        self.other_hangul_pattern = _hangul_pattern(other_hangul - self.hangul)
        digits = sorted((n for n in identity.numbers if n.isdigit()), key=lambda n: (-len(n), n))
        mixed = sorted((n for n in identity.numbers if not n.isdigit()), key=lambda n: (-len(n), n))
        alternatives = [rf"(?<!\d){re.escape(n)}(?!\d)" for n in digits]
        alternatives += [rf"(?<![A-Za-z0-9]){re.escape(n)}(?![A-Za-z0-9])" for n in mixed]
        self.numbers = re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None
        self.digit_numbers = frozenset(digits)
        self.fixed = frozenset(fixed) | _BUILTIN_NAMES | AUTHOR_VARIABLES
        self.renames: dict[str, str] = {}
        self.taken = set(identifiers) | set(identity.code_words) | _BUILTIN_NAMES
        for name in sorted(set(identifiers) | set(identity.code_words)):
            self.rename(name)

    # identifiers

    def _is_identity_piece(self, piece: str) -> bool:
        if piece.isdigit():
            return piece in self.digit_numbers
        return piece.lower() in self.identity_pieces or any(piece.startswith(h) for h in self.hangul)

    def rename(self, name: str) -> str:
        """``name`` with its name parts as :data:`ANON` (``jdoe_debug`` -> ``anon_debug``), the
        same for the same name; ``name`` itself when it holds none or may not change."""
        if name in self.renames:
            return self.renames[name]
        new = name
        if name not in self.fixed and not (name.startswith("__") and name.endswith("__")):
            spans = _split_word(name)
            marked = [self._is_identity_piece(name[a:b]) for a, b in spans]
            if any(marked):
                for number in range(1, 1000):
                    tag = ANON if number == 1 else f"{ANON}{number}"
                    candidate = _anon_name(name, spans, marked, tag)
                    if candidate not in self.taken and not keyword.iskeyword(candidate):
                        new = candidate
                        break
                self.taken.add(new)
        self.renames[name] = new
        return new

    def rename_code(self, code: str) -> str:
        """Identifiers renamed and the author's student number as ``0`` in a piece of code."""

        def one(match: re.Match[str]) -> str:
            word = match.group()
            if word[0].isdigit():
                return "0" if word.replace("_", "") in self.digit_numbers else word
            return self.rename(word)

        return re.sub(r"(?<![\w.])\d[\d_]*(?![\w.])|(?<!\w)[^\W\d]\w*", one, code)

    # text

    def _word_hidden(self, word: str, prose: bool) -> bool:
        low = word.lower()
        if low in self.any_case or word in self.exact:
            return True
        return prose and (low in self.other_any or word in self.other_exact)

    def _component_hidden(self, text: str, prose: bool) -> bool:
        """Whether a path component or file name holds identity (any of its words or parts)."""
        for match in re.finditer(r"[^\W_]+|\w+", text):
            word = match.group()
            if self._word_hidden(word, prose) or (self.numbers and self.numbers.search(word)):
                return True
            if any(self._is_identity_piece(piece) for piece in _pieces(word)):
                return True
            if self.hangul_pattern and self.hangul_pattern.search(word):
                return True
        low = text.lower()
        return any(h in low for h in self.identity.handles if not h.isalnum() and re.search(r"[._-]", h))

    def _url_hidden(self, url: str) -> bool:
        personal, _ = _url_owner(url)
        return personal or self._component_hidden(url.split("://", 1)[-1], prose=False)

    def prose(self, text: str) -> str:
        """A comment, docstring or plain text with the identity hidden."""
        return self._scrub(text, prose=True)

    def code_string(self, text: str) -> str:
        """The content of a string literal that is code: as prose, but other people's name
        parts and unknown ``@words`` stay."""
        return self._scrub(text, prose=False)

    def _scrub(self, text: str, prose: bool) -> str:
        if not text:
            return text
        edits: list[tuple[int, int, str]] = []
        used = bytearray(len(text))

        def free(start: int, end: int) -> bool:
            return not any(used[start:end])

        def take(start: int, end: int, replacement: str) -> None:
            edits.append((start, end, replacement))
            used[start:end] = b"\x01" * (end - start)

        def hide_all(*patterns: re.Pattern[str] | None) -> None:
            for pattern in patterns:
                for match in pattern.finditer(text) if pattern is not None else ():
                    if free(*match.span()):
                        take(*match.span(), HIDDEN)

        for match in _URL.finditer(text):
            url = _trim_url(match.group())
            start, end = match.start(), match.start() + len(url)
            if url and free(start, end):
                take(start, end, HIDDEN if self._url_hidden(url) else url)
        for match in EMAIL.finditer(text):
            if free(*match.span()):
                take(*match.span(), HIDDEN)
        for match in USER_PATH.finditer(text):
            end = match.start() + len(match.group().rstrip(".,;:!?)"))
            if free(match.start(), end):
                take(match.start(), end, HIDDEN)
        for match in _AT_HANDLE.finditer(text):
            handle = match.group("handle").lower()
            mine = handle in self.identity.handles or handle in self.identity.other_handles
            if free(*match.span()) and (mine or (prose and handle not in _TAGS and handle not in COMMON_WORDS)):
                take(*match.span(), HIDDEN)
        hide_all(self.numbers, _STUDENT_NUMBER, self.whole, self.other_whole if prose else None)
        for match in _PATHISH.finditer(text):
            if not free(*match.span()):
                continue
            for part in re.finditer(rf"(?:(?!{_SEPARATOR}).)+", match.group()):
                if self._component_hidden(part.group(), prose):
                    start = match.start() + part.start()
                    take(start, start + len(part.group()), HIDDEN)
            used[match.start() : match.end()] = b"\x01" * (match.end() - match.start())
        for match in _FILE_NAME.finditer(text):
            if free(*match.span()) and self._component_hidden(match.group(), prose):
                take(*match.span(), HIDDEN)
        hide_all(self.hangul_pattern, self.other_hangul_pattern if prose else None)
        for match in _ESCAPE_OR_WORD.finditer(text):
            word = match.group(1)
            if word is None or word.isdigit() or not free(*match.span(1)):
                continue
            if self._word_hidden(word, prose):
                take(*match.span(1), HIDDEN)
                continue
            spans = _split_word(word)
            if len(spans) < 2:
                continue
            marked = [self._is_identity_piece(word[a:b]) for a, b in spans]
            if all(marked):
                take(*match.span(1), HIDDEN)
            elif any(marked):
                take(*match.span(1), self.rename(word))
        if not edits:
            return text
        out = []
        last = 0
        for start, end, replacement in sorted(edits):
            out.append(text[last:start] + replacement)
            last = end
        out.append(text[last:])
        return _RUN_OF_HIDDEN.sub(HIDDEN, "".join(out))  # "Jane Doe" by its parts: one <hidden>, not two


def _anon_name(name: str, spans: list[tuple[int, int]], marked: list[bool], tag: str) -> str:
    """``name`` with its marked parts replaced by ``tag`` in their case; marked parts next to
    each other (``jane_doe``) become one."""
    out = []
    last = 0
    previous_marked = False
    for (start, end), mark in zip(spans, marked):
        between = name[last:start]
        piece = name[start:end]
        if mark:
            if previous_marked and between.strip("_") == "":
                last = end
                continue
            if piece.isupper() and len(piece) > 1:
                word = tag.upper()
            elif piece[0].isupper():
                word = tag.capitalize()
            else:
                word = tag
            out.append(between + word)
        else:
            out.append(between + piece)
        previous_marked = mark
        last = end
    out.append(name[last:])
    return "".join(out)


def _name_regex(name: str) -> str:
    """A full name as a regex: its words with any blanks between."""
    return r"[ \t]+".join(re.escape(word) for word in name.split())


def _alternatives(literals: Iterable[str], regexes: Iterable[str]) -> re.Pattern[str] | None:
    """Whole tokens, any case: the ``literals`` and the ``regexes``, longest first."""
    items = {re.escape(item) for item in literals if item} | {item for item in regexes if item}
    if not items:
        return None
    alternatives = "|".join(sorted(items, key=lambda r: (-len(r), r)))
    return re.compile(rf"(?<![\w])(?:{alternatives})(?![\w-]|\.\w)", re.IGNORECASE)


def _hangul_pattern(names: Collection[str]) -> re.Pattern[str] | None:
    """Hangul names at the start of a word (particles may follow: 김민수가, 민수의)."""
    if not names:
        return None
    alternatives = "|".join(sorted(names, key=lambda n: (-len(n), n)))
    return re.compile(rf"(?<![가-힣])(?:{alternatives})")


def _hide_literal(literal: str, hide: Callable[[str], str], rename: Callable[[str], str]) -> str:
    """A string literal's source with ``hide`` applied to its content (and ``rename`` to the
    code of an f-string's fields); when that would break the literal (an escape cut in two),
    the whole content becomes :data:`HIDDEN`, with the same line breaks."""
    prefix_end = len(literal) - len(literal.lstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    quote = literal[prefix_end : prefix_end + 3]
    if quote not in ('"""', "'''"):
        quote = literal[prefix_end : prefix_end + 1]
    head, content, tail = literal[: prefix_end + len(quote)], literal[prefix_end + len(quote) : -len(quote)], quote
    if "f" in head.lower():  # an f-string: its {expressions} are code
        hidden = "".join(rename(part) if is_code else hide(part) for part, is_code in _fstring_parts(content))
    else:
        hidden = hide(content)
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


# -- a source that parses ------------------------------------------------------------------


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


def _by_tokens(source: str, tree: ast.Module, tokens: list[tokenize.TokenInfo], identity: Identity) -> str:
    """:func:`anonymize` for a source that parses: edits at token and statement positions."""
    scrub = _Scrubber(identity, _identifiers(tree), _imported(tree))
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
                literal = source[fstring_from:end]
                edits.append((fstring_from, end, _hide_literal(literal, scrub.code_string, scrub.rename_code)))
        elif depth or inside(removed, start, end):
            continue
        elif token.type == tokenize.COMMENT:
            edits.append((start, end, scrub.prose(token.string)))
        elif token.type == tokenize.STRING:
            hide = scrub.prose if inside(prose, start, end) else scrub.code_string
            edits.append((start, end, _hide_literal(token.string, hide, scrub.rename_code)))
        elif token.type == tokenize.NAME:
            edits.append((start, end, scrub.rename(token.string)))
        elif token.type == tokenize.NUMBER and token.string.replace("_", "") in scrub.digit_numbers:
            edits.append((start, end, "0"))
    result = _apply(source, edits)
    try:
        ast.parse(result)
    except SyntaxError:  # not expected; never hand out what does not parse
        return _by_lines(source, identity)
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
        if source[start:end] != replacement:
            source = source[:start] + replacement + source[end:]
    return source


# -- a source that does not parse ----------------------------------------------------------


def _scan(source: str) -> list[tuple[bool, list[tuple[str, str]]]]:
    """Each line of ``source`` cut into ``(kind, text)`` segments, following quotes over lines:
    ``code``, ``quote`` (a string's quotes), ``string`` (a one-line string's content),
    ``prose`` (a triple-quoted string's content), ``comment`` and ``end`` (the line break);
    with each line whether it starts in code (not inside a string)."""
    out = []
    quote = ""
    for line in source.splitlines(keepends=True):
        starts_in_code = not quote
        body = line.rstrip("\r\n")
        segments: list[tuple[str, str]] = []
        i = 0
        while i < len(body):
            if quote:
                j = i
                while j < len(body) and not body.startswith(quote, j):
                    j += 2 if body[j] == "\\" else 1
                segments.append(("prose" if len(quote) == 3 else "string", body[i : min(j, len(body))]))
                if j >= len(body):
                    if len(quote) == 1 and not body.endswith("\\"):
                        quote = ""  # an unterminated string ends with its line
                    i = len(body)
                    break
                segments.append(("quote", quote))
                i, quote = j + len(quote), ""
                continue
            j = i
            while j < len(body) and body[j] not in "#'\"":
                j += 1
            if j > i:
                segments.append(("code", body[i:j]))
            if j >= len(body):
                break
            if body[j] == "#":
                segments.append(("comment", body[j:]))
                break
            quote = body[j : j + 3] if body.startswith(('"""', "'''"), j) else body[j]
            segments.append(("quote", quote))
            i = j + len(quote)
        if quote and len(quote) == 1 and not body.endswith("\\"):
            quote = ""
        segments.append(("end", line[len(body) :]))
        out.append((starts_in_code, segments))
    return out


def _by_lines(source: str, identity: Identity) -> str:
    """:func:`anonymize` for a source that does not parse: per line (see :func:`_scan`),
    comments and triple-quoted text get the rules of prose, one-line strings those of code
    strings, code its identifiers renamed; an author assignment leaves its line blank."""
    lines = _scan(source)
    identifiers: set[str] = set()
    imported: set[str] = set()
    for _, segments in lines:
        code = "".join(text for kind, text in segments if kind == "code")
        words = {w for w in re.findall(r"[^\W\d]\w*", code) if w not in _BUILTIN_NAMES}
        identifiers |= words
        if re.match(r"\s*(?:from|import)\b", code):
            imported |= words - set(re.findall(r"\bas\s+(\w+)", code))
    scrub = _Scrubber(identity, identifiers, imported)
    out = []
    for starts_in_code, segments in lines:
        code = "".join(text for kind, text in segments if kind != "end")
        if starts_in_code and _AUTHOR_ASSIGNMENT_LINE.match(code):
            out.append(segments[-1][1])
            continue
        for kind, text in segments:
            if kind == "code":
                out.append(scrub.rename_code(text))
            elif kind == "string":
                out.append(scrub.code_string(text))
            elif kind in ("prose", "comment"):
                out.append(scrub.prose(text))
            else:
                out.append(text)
    return "".join(out)
