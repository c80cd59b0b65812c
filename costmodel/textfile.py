"""Reading a user's text file safely: a regular file only, size checked before reading, UTF-8 text.

- Named pipes, directories and devices are refused: the file is opened non-blocking and checked with fstat
  before a byte is read (opening a pipe never blocks, a pipe is never read).
- At most ``max_bytes`` are read (checked from the size first, then by reading one byte more).
- UTF-8 only (a leading byte-order mark is dropped); NUL characters are refused, so a binary or UTF-16
  file is an error naming the file and what it was expected to be.

Used for hardware files, efficiency profiles and measured points (costmodel.accuracy.files adds JSON).
"""

from __future__ import annotations

import os
import stat


def read_text_file(path, *, what: str, max_bytes: int) -> str:
    """The text of ``path``; ValueError naming ``what`` and the path for anything but a small UTF-8 file."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{what}: the path must be a string or path; got {type(path).__name__}")
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{what} {name!r}: cannot open: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{what} {name!r}: not a regular file")
        if st.st_size > max_bytes:
            raise ValueError(f"{what} {name!r}: {st.st_size} bytes is over the limit of {max_bytes}")
    except ValueError:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{what} {name!r}: more than {max_bytes} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {name!r}: not UTF-8 text (bad byte at offset {exc.start})") from None
    if "\x00" in text:
        raise ValueError(f"{what} {name!r}: holds NUL characters (not a text file)")
    return text
