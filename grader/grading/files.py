"""Files the grader writes for staff: whole or not at all.

:func:`write_atomic` is the one way results, gradebooks, review rounds and course configs are
written: through a temporary file beside the target (made mode 600 by :mod:`tempfile`),
flushed to disk, moved over the target in one step, and the folder synced, so a reader or a
kill sees the old file or the new one whole, never half of one, and never a moment where a
private file is open to others.
"""

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], text: str, mode: int = 0o600) -> None:
    """Replace ``path`` by ``text`` (UTF-8, line endings as given) at once, with ``mode``
    (600 unless told: most of what staff keep is private); makes the folder if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode != 0o600:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
