"""The secret key of staff grading: examples a student cannot replay.

A student's local ``check`` is deterministic and public: the hypothesis examples and
every tensor value are a function of the tests alone.  Staff grading (``grader batch``,
``check --staff`` with ``GRADER_STAFF_KEY`` set) mixes a secret key into both:

* each hypothesis test runs from the seed ``HMAC-SHA256(key, "hypothesis:" + test)``
  instead of its derandomized one (so sizes, seeds and ints change with the key);
* ``grader.testing.strategies.generator(seed)`` seeds its torch generator with
  ``HMAC-SHA256(key, "generator:" + seed)`` truncated to 63 bits (so every tensor value,
  fixed seeds included, changes with the key).

The same key gives the same examples, and so the same score, every time.

The key travels only among trusted processes: the CLI hands it to the child pytest
process through an inherited pipe (``GRADER_STAFF_KEY_FD``), never on a command line or
in the child's environment, and never to the sandboxed worker (whose environment is
built from scratch, see :mod:`grader.adapters.sandboxed`).  A process that holds the key
marks itself non-dumpable, so a worker running under the same uid (an unprivileged
grader) cannot read its ``/proc/PID/environ`` or memory either.
"""

import hashlib
import hmac
import math
import os
import secrets
import tempfile
from pathlib import Path
from typing import overload

#: The environment variable staff set to choose the key (any non-empty text).
ENV = "GRADER_STAFF_KEY"
#: How the runner tells the child pytest process where to read the key (a pipe's fd number).
FD_ENV = "GRADER_STAFF_KEY_FD"
#: The key a batch creates and keeps in its output folder when ``GRADER_STAFF_KEY`` is unset.
KEY_FILE = ".staff_key"
#: A fingerprint of the key a batch output folder was graded with (to refuse mixing keys).
ID_FILE = ".staff_key_id"
MAX_KEY_BYTES = 4096


class StaffKeyError(Exception):
    """The staff key cannot be used (unreadable, empty, or not the one a batch began with)."""


@overload
def normalize(key: None) -> None: ...
@overload
def normalize(key: str | bytes) -> bytes: ...
def normalize(key: str | bytes | None) -> bytes | None:
    """The key as bytes (``str`` keys are UTF-8 encoded; surrounding whitespace dropped)."""
    if key is None:
        return None
    data = key.encode() if isinstance(key, str) else bytes(key)
    data = data.strip()
    if not data:
        raise StaffKeyError("the staff key is empty")
    if len(data) > MAX_KEY_BYTES:
        raise StaffKeyError(f"the staff key is longer than {MAX_KEY_BYTES} bytes")
    return data


#: The least a key must carry (:func:`strength`) where it is written into a package.
MIN_BITS = 128
#: What to suggest instead of a weak key.
NEW_KEY = "python -c 'import secrets; print(secrets.token_hex(32))'"


def strength(key: bytes) -> float:
    """A rough upper bound on the bits of entropy in ``key``: its length times the Shannon
    entropy of its byte frequencies (a repeated or short key scores low; a random hex key of
    64 characters about 256)."""
    if not key:
        return 0.0
    counts = [key.count(b) for b in set(key)]
    per_byte = -sum(c / len(key) * math.log2(c / len(key)) for c in counts)
    return len(key) * per_byte


def require_strong(key: bytes) -> None:
    """Raise :class:`StaffKeyError` when ``key`` carries less than :data:`MIN_BITS` bits (:func:`strength`)."""
    bits = strength(key)
    if bits < MIN_BITS:
        raise StaffKeyError(
            f"the staff key is too easy to guess (about {bits:.0f} bits of entropy, at least {MIN_BITS} needed): "
            f"a student who guesses it can replay the staff examples; make one with {NEW_KEY}"
        )


def derive(key: bytes, label: str, bits: int) -> int:
    """``bits`` bits of ``HMAC-SHA256(key, label)`` as a non-negative int."""
    digest = hmac.new(key, label.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest, "big") >> (256 - bits)


def fingerprint(key: bytes) -> str:
    """A short public name of ``key`` (to tell keys apart; reveals nothing useful of a random key)."""
    return hmac.new(key, b"grader staff key fingerprint", hashlib.sha256).hexdigest()[:16]


# --------------------------------------------------------------------------- the test process

_installed: bytes | None = None


def install(key: str | bytes | None) -> None:
    """Use ``key`` (bytes, or ``None``: the public examples) in this (trusted) test process."""
    global _installed
    _installed = normalize(key) if key is not None else None
    if _installed is not None:
        hide_this_process()


def installed() -> bytes | None:
    """The key in use in this process, or ``None`` (local, public examples)."""
    return _installed


def tensor_seed(seed: int) -> int:
    """The torch seed for ``generator(seed)``: ``seed`` itself without a key."""
    if _installed is None:
        return seed
    return derive(_installed, f"generator:{int(seed)}", 63)


def hypothesis_seed(test_id: str) -> int | None:
    """The hypothesis seed of test ``test_id`` under the key (``None`` without a key)."""
    if _installed is None:
        return None
    return derive(_installed, f"hypothesis:{test_id}", 128)


# --------------------------------------------------------------------------- passing it on


def send(key: str | bytes) -> tuple[int, dict[str, str]]:
    """A pipe holding ``key`` for a child process: ``(read_fd, env)``.  Pass ``read_fd``
    in ``pass_fds`` and add ``env`` to the child's environment; close ``read_fd`` after
    starting the child.  The key is never on a command line nor in an environment."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, normalize(key))  # far below the pipe's buffer: never blocks
    finally:
        os.close(write_fd)
    return read_fd, {FD_ENV: str(read_fd)}


def receive() -> bytes | None:
    """The key sent by :func:`send` to this process (``None`` if none was sent)."""
    fd = os.environ.pop(FD_ENV, None)
    if not fd:
        return None
    try:
        with os.fdopen(int(fd), "rb") as pipe:
            data = pipe.read(MAX_KEY_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise StaffKeyError(f"cannot read the staff key from fd {fd}: {exc}") from None
    return normalize(data)


def from_environment() -> bytes | None:
    """``GRADER_STAFF_KEY`` as bytes, or ``None`` when unset or empty."""
    value = os.environ.get(ENV, "")
    return normalize(value) if value.strip() else None


def for_batch(out_dir: str | os.PathLike[str], key: str | bytes | None = None) -> bytes:
    """The key of a batch into ``out_dir``: ``key`` if given, else ``GRADER_STAFF_KEY``,
    else ``out_dir/.staff_key`` (32 random bytes in hex, created on the first run with
    mode 600).  The folder also keeps the key's fingerprint (``.staff_key_id``): a resumed
    batch with another key is refused, so one gradebook is never graded with two keys."""
    out_dir = Path(out_dir)
    key = normalize(key) if key is not None else from_environment() or _read_or_create(out_dir / KEY_FILE)
    mark = fingerprint(key)
    id_path = out_dir / ID_FILE
    _create_exclusive(id_path, mark.encode() + b"\n")
    found = id_path.read_text().strip()
    if found != mark:
        raise StaffKeyError(
            f"{out_dir} was graded with another staff key (fingerprint {found}, this key {mark}): "
            f"grade with the same key (GRADER_STAFF_KEY, or the {KEY_FILE} kept there) "
            f"or into a fresh --out folder"
        )
    return key


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` (mode 600) unless it exists; atomic and race-free."""
    if path.exists():
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: mode 600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if another batch created it first
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _read_or_create(path: Path) -> bytes:
    _create_exclusive(path, secrets.token_hex(32).encode() + b"\n")
    info = path.lstat()
    if not path.is_file() or path.is_symlink():
        raise StaffKeyError(f"{path} is not a regular file")
    if info.st_mode & 0o077:
        os.chmod(path, 0o600)
    return normalize(path.read_bytes())


# --------------------------------------------------------------------------- process hygiene


def hide_this_process() -> None:
    """Make this process non-dumpable: other processes of the same uid (a worker of an
    unprivileged grader) can then read neither its ``/proc/PID/environ`` nor its memory.
    Children started with ``exec`` are dumpable again.  Best effort (Linux only)."""
    from grader.execution import confine

    confine.prctl(confine.PR_SET_DUMPABLE, 0)
