"""Staging: the safe copy of one submission's module files out of a folder or a ``.zip``.

Only the module files (``attention.py``, ...) are copied, into a fresh folder, each from
the shallowest depth where it is found (at most two folders deep): links, special files,
oversized files and unsafe zip entries (absolute paths, ``..``, links, zip bombs) are never
followed or extracted; each file skipped is a staging note.  A zip that cannot be read, or
has too many entries or unpacks too large, is :class:`Rejected` as a whole.
:func:`stage_modules` also reads a module handed in only as a notebook (``<module>.ipynb``) out
of its solution cells, as a Gradescope upload and the peer review read one.
:func:`files_sha256` hashes what was staged, which is how a resumed batch
(:mod:`grader.grading.batch`) tells a changed submission from one already graded.
"""

import hashlib
import os
import stat
import tempfile
import zipfile
from collections.abc import Collection, Iterable
from pathlib import Path, PurePosixPath

from grader import rubric

MAX_FILE_BYTES = 1 << 20
MAX_ZIP_MEMBERS = 2000
MAX_ZIP_TOTAL = 64 << 20
MAX_RATIO = 200
MODULE_FILES = {f"{m}.py" for m in rubric.MODULES}


class Rejected(Exception):
    """A submission that cannot be staged (a corrupt zip, nothing to grade)."""


def _depth_order(names: Iterable[str], wanted: Collection[str] = MODULE_FILES) -> dict[str, str]:
    """Files named in ``wanted`` found at the shallowest depth that has any: ``{basename: member}``."""
    chosen: dict[str, str] = {}
    for name in sorted(names, key=lambda n: (len(PurePosixPath(n).parts), n)):
        base = PurePosixPath(name).name
        if base in wanted and base not in chosen and len(PurePosixPath(name).parts) <= 3:
            chosen[base] = name
    return chosen


def stage_folder(
    src: Path, dst: Path, wanted: Collection[str] = MODULE_FILES, max_bytes: int = MAX_FILE_BYTES
) -> list[str]:
    """Copy the module files (``wanted``: these names) of folder ``src`` (regular files only, no
    links, at most ``max_bytes`` each) into ``dst``."""
    notes: list[str] = []
    found: list[str] = []
    for root, dirs, files in os.walk(src, followlinks=False):
        depth = len(Path(root).relative_to(src).parts)
        dirs[:] = [d for d in dirs if depth < 2 and not d.startswith(".")]
        found += [str(Path(root, f).relative_to(src)) for f in files if f in wanted]
    for base, rel in _depth_order(found, wanted).items():
        path = Path(src, rel)
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            notes.append(f"{rel}: not a regular file (links are not followed)")
            continue
        if info.st_size > max_bytes:
            notes.append(f"{rel}: larger than {max_bytes} bytes")
            continue
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            (dst / base).write_bytes(fh.read(max_bytes))
    return notes


def stage_zip(
    src: Path, dst: Path, wanted: Collection[str] = MODULE_FILES, max_bytes: int = MAX_FILE_BYTES
) -> list[str]:
    """Extract the module files (``wanted``: these names, at most ``max_bytes`` each) of zip
    ``src`` into ``dst``, refusing unsafe entries."""
    notes: list[str] = []
    try:
        with zipfile.ZipFile(src) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise Rejected(f"{len(infos)} entries (more than {MAX_ZIP_MEMBERS})")
            if sum(i.file_size for i in infos) > MAX_ZIP_TOTAL:
                raise Rejected(f"unpacks to more than {MAX_ZIP_TOTAL} bytes")
            safe: dict[str, zipfile.ZipInfo] = {}
            for info in infos:
                name = info.filename
                parts = PurePosixPath(name.replace("\\", "/")).parts
                mode = info.external_attr >> 16
                if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    notes.append(f"{name}: unsafe path, skipped")
                elif stat.S_ISLNK(mode):
                    notes.append(f"{name}: a link, skipped")
                elif not info.is_dir():
                    safe["/".join(parts)] = info
            for base, name in _depth_order(list(safe), wanted).items():
                info = safe[name]
                if info.file_size > max_bytes or (
                    info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 1 << 16
                ):
                    notes.append(f"{name}: too large or too compressed, skipped")
                    continue
                with zf.open(info) as fh:
                    data = fh.read(max_bytes + 1)
                if len(data) > max_bytes:
                    notes.append(f"{name}: larger than {max_bytes} bytes, skipped")
                    continue
                (dst / base).write_bytes(data)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        ValueError,
        RuntimeError,
        NotImplementedError,
    ) as exc:  # RuntimeError: encrypted; NotImplementedError: unknown compression
        raise Rejected(f"not a readable zip file ({exc})") from None
    return notes


def stage(src: Path, dst: Path, wanted: Collection[str] = MODULE_FILES, max_bytes: int = MAX_FILE_BYTES) -> list[str]:
    """Stage submission ``src`` (a folder or a zip) into ``dst``; the staging notes.  ``wanted``
    and ``max_bytes``: other file names and size (the notebooks of a Gradescope upload)."""
    stager = stage_zip if src.is_file() else stage_folder
    return stager(src, dst, wanted, max_bytes)


def files_sha256(folder: str | os.PathLike[str]) -> str:
    """A SHA-256 over the files of ``folder``, sorted by name: each one's name and content."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir(), key=lambda p: p.name):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def staged_sha256(src: str | os.PathLike[str]) -> str | None:
    """The ``files_sha256`` that grading ``src`` now would record (``None``: it is rejected)."""
    with tempfile.TemporaryDirectory(prefix="grader-stage-") as tmp:
        try:
            stage(Path(src), Path(tmp))
        except Rejected:
            return None
        return files_sha256(tmp)
