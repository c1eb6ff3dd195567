"""A file's identity by content: a hash of its bytes.

A moved or renamed file keeps its key; any change gives another. The store hashes a file only
when it is new or its size or mtime changed, so an unchanged library is looked up without
reading a byte; hashing a new file costs a few ms, little beside its analysis.
"""

from __future__ import annotations

import hashlib

CHUNK = 1 << 20


def content_key(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
