"""Durable file writes: every file genesis writes goes through ``atomic_write``.

The content goes to a temporary file in the target's folder, is flushed and fsynced, renamed
over the target and the folder is fsynced, so a crash or a full disk leaves either the old
file or the new one, never a mix. The SHA-256 of the bytes handed to the OS is computed on the
way and returned, for checkpoint manifests. Files are created ``0o666 & ~umask``, like
``open(path, "w")``, so every file of a checkpoint gets the same permissions.
"""
import hashlib
import os
import secrets
from collections import namedtuple

__all__ = ["FileDigest", "atomic_write", "fsync_dir", "sha256_file"]

_CHUNK = 1 << 24

FileDigest = namedtuple("FileDigest", ["sha256", "size"])
FileDigest.__doc__ = "SHA-256 (hex) and size in bytes of a written file."


class _HashingWriter:
    """A binary file wrapper that hashes and counts every byte written through it."""

    def __init__(self, f):
        self._f = f
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data):
        """Write a bytes-like object (any C-contiguous buffer) in chunks; returns its length."""
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _CHUNK):
            part = view[start:start + _CHUNK]
            self._f.write(part)
            self._hash.update(part)
        self.size += len(view)
        return len(view)

    def flush(self):
        """Flush the underlying file."""
        self._f.flush()

    def digest(self):
        """The ``FileDigest`` of everything written so far."""
        return FileDigest(self._hash.hexdigest(), self.size)


def atomic_write(path, content):
    """Write ``content`` to ``path`` atomically and durably; returns its ``FileDigest``.

    ``content`` is bytes, a str (written as UTF-8) or a callable given a binary file object
    to write into. On any error the temporary file is removed and the target is untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}."
                                  f"{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as raw:
            out = _HashingWriter(raw)
            if callable(content):
                content(out)
            else:
                out.write(content.encode("utf-8") if isinstance(content, str) else content)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
    return out.digest()


def fsync_dir(directory):
    """Persist renames in ``directory`` (best effort: some filesystems cannot fsync a folder)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def sha256_file(path):
    """The ``FileDigest`` of the file at ``path``, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(_CHUNK)
            if not block:
                break
            h.update(block)
            size += len(block)
    return FileDigest(h.hexdigest(), size)
