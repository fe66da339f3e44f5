"""Durable file writes: a file that exists is complete, even after a crash or a power cut."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(final: Path, data: bytes) -> Path:
    """Write ``data`` to ``final`` via a temp file, fsync and rename, then fsync the folder.

    The temp file ends in ``.part`` so that a partial file left by a crash never looks like a
    finished one (``*.eml`` readers and "file exists means sent" checks rely on this).
    """
    directory = final.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a power cut
    finally:
        os.close(dir_fd)
    return final
