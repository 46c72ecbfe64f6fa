"""Atomic file writing: temporary names, fsync and rename into place."""

import contextlib
import json
import os
import re
import socket
from collections.abc import Iterator
from typing import Any

#: Name of this host, in the temporary names of the files this process writes.
HOST = socket.gethostname()

#: Matches a temporary name made by :func:`temp_name`: its process id and host.
TEMP_RE = re.compile(r'^\..+\.tmp-(?P<pid>\d+)(?:@(?P<host>.*))?$')


def temp_name(path: str) -> str:
    """Return the temporary name a file is written under before its rename.

    Args:
        path: final path of the file.

    Returns:
        a hidden name in the same folder, tagged with this process and host.
    """
    folder, name = os.path.split(path)
    return os.path.join(folder, f'.{name}.tmp-{os.getpid()}@{HOST}')


def fsync_file(path: str) -> None:
    """Flush a closed file to disk.

    Args:
        path: file to flush.
    """
    with open(path, 'r+b') as f:
        os.fsync(f.fileno())


def fsync_dir(path: str) -> None:
    """Flush a folder's entries (renames) to disk, where the platform allows it.

    Args:
        path: folder to flush.
    """
    if not hasattr(os, 'O_DIRECTORY'):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path; on success flush it and rename it onto ``path``.

    On failure the temporary file is removed and ``path`` is left as it was.

    Args:
        path: final path of the file.

    Yields:
        the temporary path to write.
    """
    temp = temp_name(path)
    try:
        yield temp
        fsync_file(temp)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise


def write_json(path: str, data: Any) -> None:
    """Write JSON atomically: temporary file, fsync, rename, folder fsync.

    Args:
        path: final path of the file.
        data: JSON-serialisable data.
    """
    text = json.dumps(data, indent=1, allow_nan=False) + '\n'
    with atomic_path(path) as temp, open(temp, 'w', encoding='utf-8') as f:
        f.write(text)
    fsync_dir(os.path.dirname(path) or '.')
