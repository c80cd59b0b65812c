"""Reading an .npz file a user hands over, safely: checked before anything is allocated, never unpickled.

An .npz is a zip archive of .npy members (``numpy.savez``). ``read_npz`` refuses, with a VectorFileError
(a ValueError) naming the file, its role (``what``: "vectors file", "candidate file") and what it was
expected to be:

- a path that is not a regular file (a directory, a named pipe, a device): opened non-blocking and checked
  with fstat before a byte is read, so a pipe never blocks the reader;
- a file over MAX_FILE_BYTES, and one that is not a zip: an .npy (numpy.save's single array), empty, text,
  UTF-16 text or other binary data, each said so;
- a member that is not a .npy array, an .npy header that does not parse, an object dtype (it would need
  pickle), and a header whose shape does not match the member's size: the bytes the header claims,
  prod(shape) x itemsize (Python integers: no overflow), must equal the bytes the member holds, so a header
  claiming shape (10**15,) is refused before any allocation;
- more than MAX_MEMBERS members or MAX_FILE_BYTES of arrays in all (a zip bomb), and a member whose CRC
  fails (zipfile checks it when the member is read to its end).
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
import zlib

import numpy as np

MAX_FILE_BYTES = 2**33  # 8 GiB: a vectors file at the kit's size bound (cases.MAX_CASE_BYTES) is far smaller
MAX_MEMBERS = 100_000
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or an empty archive's end record


class VectorFileError(ValueError):
    """A vectors or candidate file that cannot be used: unreadable, corrupted, foreign or mismatched."""


def _describe(head: bytes) -> str:
    """What the first bytes of a file that is not a zip look like."""
    if not head:
        return "it is empty"
    if head.startswith(_NPY_MAGIC):
        return "it is a single .npy array (numpy.save), not an .npz archive (numpy.savez)"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "it is UTF-16 text"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or not all(c.isprintable() or c in "\t\r\n" for c in text):
        return f"it is binary data beginning with {head.hex(' ')}"
    return f"it is text beginning {text!r}"


def _open(path, what: str, expected: str):
    if not isinstance(path, (str, os.PathLike)):
        raise VectorFileError(f"{what}: the path must be a string or path; got {type(path).__name__}")
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise VectorFileError(f"{what} {name}: no such file") from None
    except (OSError, ValueError) as exc:
        raise VectorFileError(f"{what} {name}: cannot open: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = {stat.S_ISDIR(st.st_mode): "a directory", stat.S_ISFIFO(st.st_mode): "a named pipe"}.get(True)
            raise VectorFileError(f"{what} {name}: {kind or 'not a regular file'}; expected {expected}")
        if st.st_size > MAX_FILE_BYTES:
            raise VectorFileError(f"{what} {name}: {st.st_size} bytes is over the limit of {MAX_FILE_BYTES}")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    head = fh.read(8)
    if not head.startswith(_ZIP_MAGIC):
        fh.close()
        raise VectorFileError(f"{what} {name}: not an .npz archive; {_describe(head)}; expected {expected}")
    fh.seek(0)
    return name, fh


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One .npy member, its header checked against its size before the array is allocated."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        if dtype.hasobject:
            raise ValueError("an object array (reading it would need pickle: refused)")
        claimed = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        held = info.file_size - f.tell()
        if claimed != held:
            raise ValueError(f"its header claims shape {shape} of {dtype} = {claimed} bytes, but it holds {held}")
        buf = bytearray(claimed)
        if f.readinto(buf) != claimed or f.read(1):  # reading to the end checks the CRC
            raise ValueError("truncated")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def read_npz(path, what: str, expected: str) -> dict:
    """{name: array} of an .npz file, checked as the module docstring says; ``expected`` says what it should be."""
    name, fh = _open(path, what, expected)
    with fh:
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            raise VectorFileError(f"{what} {name}: unreadable .npz (truncated or corrupted?): {reason}") from None
        with zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > MAX_FILE_BYTES:
                raise VectorFileError(f"{what} {name}: over {MAX_MEMBERS} members or {MAX_FILE_BYTES} bytes in all")
            arrays = {}
            for info in infos:
                if not info.filename.endswith(".npy") or info.is_dir():
                    raise VectorFileError(f"{what} {name}: member {info.filename!r} is not a .npy array; "
                                          f"expected {expected}")  # fmt: skip
                try:
                    arrays[info.filename[:-4]] = _read_member(zf, info)
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, TypeError) as exc:
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise VectorFileError(f"{what} {name}: unreadable .npz (truncated or corrupted?): member "
                                          f"{info.filename!r}: {reason}") from None  # fmt: skip
    return arrays
