"""Which server files a browser or API client may read: regular files inside the media folders.

Paths given on the command line never come here (the operator is trusted); paths that
arrive over HTTP or Socket.IO do, and are resolved with ``os.path.realpath`` before the
containment check, so ``..`` and symlinks that lead outside a folder are refused.
"""

from __future__ import annotations

import os
import stat

NO_MEDIA_DIRS = ("Reading files on the server from the browser or the API is disabled: "
                 "start the server with --media-dir DIR to allow audio files under DIR, or upload the file instead.")


class MediaPathError(ValueError):
    """A requested path is outside the media folders or not a readable regular file."""


def normalise_dirs(dirs) -> list[str]:
    """Real paths of the configured media folders (each must be an existing directory)."""
    out = []
    for d in dirs or ():
        real = os.path.realpath(os.path.expanduser(str(d)))
        if not os.path.isdir(real):
            raise MediaPathError(f"media folder {d!r} is not a directory")
        if real not in out:
            out.append(real)
    return out


def inside(path: str, folder: str) -> bool:
    """True when real path ``path`` is ``folder`` or below it (both already real paths)."""
    return os.path.commonpath([path, folder]) == folder


def resolve_media_path(path, media_dirs: list[str], extra_dirs: list[str] = ()) -> str:
    """The real path of ``path`` if it is a regular file inside one of the folders, else ``MediaPathError``.

    ``media_dirs`` and ``extra_dirs`` are real paths (``normalise_dirs``); ``extra_dirs``
    (the upload folder) are allowed but not offered in the message. A relative path is
    taken relative to the first media folder.
    """
    if not isinstance(path, str) or not path.strip():
        raise MediaPathError("a file source needs a 'path'")
    path = path.strip()
    if "\0" in path:
        raise MediaPathError("the path contains a NUL character")
    roots = list(media_dirs) + [d for d in extra_dirs if d not in media_dirs]
    if os.path.isabs(path):
        candidate = path
    elif media_dirs:
        candidate = os.path.join(media_dirs[0], path)
    else:
        raise MediaPathError(NO_MEDIA_DIRS)
    real = os.path.realpath(candidate)
    if not any(inside(real, root) for root in roots):
        # Say nothing about whether the file exists: that would map the server's disk.
        if not media_dirs:
            raise MediaPathError(NO_MEDIA_DIRS)
        raise MediaPathError(f"{path!r} is outside the media folders ({', '.join(media_dirs)}); "
                             "only files inside them can be played from the browser or the API")
    try:
        st = os.stat(real)
    except OSError:
        raise MediaPathError(f"no such file: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise MediaPathError(f"{path!r} is not a regular file (folders, devices and pipes cannot be played)")
    if not os.access(real, os.R_OK):
        raise MediaPathError(f"{path!r} is not readable by the server")
    return real
