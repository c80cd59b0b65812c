"""Writing a file a user names, safely: a regular file only, checked before a byte is written. Pure Python.

The counterpart of the readers (costmodel.textfile, refimpl.conformance.npzfile) for what the project writes:
test vectors (``glugqa ref vectors -o``), calibrated profiles (``glugqa calibrate -o``), ``--plot`` PNGs and
the generated docs. A named pipe with no reader would block ``open(path, "w")`` forever, and a device or a
directory is not where an output belongs, so:

- :func:`check_output` refuses, up front (before the work that produces the data), a path whose folder does
  not exist or that exists and is not a regular file (a directory, a named pipe, a device);
- :func:`write_output` checks again as it writes: the path is opened non-blocking and checked with fstat
  before it is truncated, so a pipe that appeared in between never blocks the writer and is never written.

Every refusal and every failed write (a full disk, no permission) is a ValueError naming ``what`` the file
is (the option that names it, e.g. "--output") and the path.
"""

from __future__ import annotations

import os
import stat


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def check_output(path, *, what: str) -> str:
    """``path`` as a string if a regular file can be written there (its folder exists; the path is absent or
    a regular file); ValueError naming ``what`` and the path otherwise."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{what}: the path must be a string or path; got {type(path).__name__}")
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        folder = os.path.dirname(os.path.abspath(name))
        if not os.path.isdir(folder):
            raise ValueError(f"{what} {name!r}: folder {folder!r} does not exist") from None
        return name
    except (OSError, ValueError) as exc:
        raise ValueError(f"{what} {name!r}: cannot write: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what} {name!r}: {_kind(st.st_mode)}; expected a regular file to write")
    return name


def write_output(path, data: bytes | str, *, what: str) -> None:
    """Write ``data`` (str: as UTF-8) to ``path``, created or replaced; ValueError as :func:`check_output`, or
    naming the error of a write that fails."""
    name = check_output(path, what=what)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NONBLOCK", 0), 0o666)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise ValueError(f"{what} {name!r}: {_kind(mode)}; expected a regular file to write")
            os.set_blocking(fd, True)
            os.ftruncate(fd, 0)
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except OSError as exc:
        raise ValueError(f"{what} {name!r}: cannot write: {exc.strerror or exc}") from None
