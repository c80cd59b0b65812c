"""Reading a Hugging Face ``config.json`` safely, and typed access to its values.

The file is checked before it is trusted: it must be a regular file (a named pipe or a device is refused, not
waited on) of at most MAX_CONFIG_BYTES, UTF-8 JSON whose top level is an object, nested at most as deep as
Python's parser allows; NaN, Infinity and integers longer than MAX_INT_DIGITS digits are kept as
:class:`Unreadable` (the key that reads one reports it). Every value is then read with its type checked
(:class:`ConfigReader`): a wrong type is a ValueError naming the key and the file, never coerced by
truthiness ("false" is not false, 0 key/value heads is not "absent").

``costmodel.hf`` turns the checked values into a ModelConfig with each family's facts (costmodel.hf_families).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from .checks import MAX_COUNT, MAX_HEADS, MAX_LAYERS, bounded_int, show

MAX_CONFIG_BYTES = 16 * 2**20  # a config.json is a few KB; the largest on the Hub are well under 1 MB
MAX_INT_DIGITS = 20  # any count a config holds fits in 20 digits (2**64 has 20)
_MISSING = object()


class ConfigReader:
    """Typed access to one config dict; every error names the key and where the dict came from."""

    def __init__(self, data: dict, where: str):
        self.data, self.where = data, where

    def error(self, key: str, expected: str, value) -> ValueError:
        return ValueError(f"{self.where}: {key!r} must be {expected}; got {show(value)}")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def _get(self, key, default):
        value = self.data.get(key)
        if value is None:  # absent or null: the family's default (as the config class's own default)
            if default is _MISSING:
                raise ValueError(f"{self.where} is missing {key!r} (model_type {show(self.data.get('model_type'))})")
            return default, True
        return value, False

    def int(self, key: str, default=_MISSING, *, minimum: int = 1, maximum: int | None = None) -> int:
        """A positive integer (``minimum=0``: non-negative; at most ``maximum``, default 2**53); bools and
        floats are errors."""
        value, defaulted = self._get(key, default)
        if defaulted:
            return value
        high = MAX_COUNT if maximum is None else maximum
        try:
            return bounded_int(key, value, high, low=minimum)
        except ValueError:
            top = "2**53" if maximum is None else f"{maximum:,}"
            raise self.error(key, f"an integer >= {minimum} (at most {top})", value) from None

    def layers(self, key: str, default=_MISSING, *, minimum: int = 1) -> int:
        """A layer count: an integer up to MAX_LAYERS (checked before any per-layer list is built)."""
        return self.int(key, default, minimum=minimum, maximum=MAX_LAYERS)

    def heads(self, key: str, default=_MISSING) -> int:
        """A query-head count: an integer up to MAX_HEADS."""
        return self.int(key, default, maximum=MAX_HEADS)

    def bool(self, key: str, default) -> bool:
        value, defaulted = self._get(key, default)
        if defaulted:
            return value
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def str(self, key: str, default=_MISSING) -> str:
        value, defaulted = self._get(key, default)
        if defaulted:
            return value
        if not isinstance(value, str):
            raise self.error(key, "a string", value)
        return value

    def number(self, key: str, default=None) -> float | None:
        """A finite positive number, or ``default`` when absent/null."""
        value, defaulted = self._get(key, default)
        if defaulted:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise self.error(key, "a finite positive number or null", value)
        return float(value)

    def int_list(self, key: str, default=()) -> tuple[int, ...]:
        value, defaulted = self._get(key, default)
        if defaulted:
            return tuple(value)
        if not isinstance(value, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in value):
            raise self.error(key, "a list of integers", value)
        if any(not 0 <= i <= MAX_COUNT for i in value):
            raise self.error(key, "a list of layer indices >= 0", value)
        return tuple(value)

    def str_list(self, key: str) -> tuple[str, ...] | None:
        value, defaulted = self._get(key, None)
        if defaulted:
            return None
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise self.error(key, "a list of strings", value)
        return tuple(value)

    def dict(self, key: str) -> dict | None:
        value, defaulted = self._get(key, None)
        if defaulted:
            return None
        if not isinstance(value, dict):
            raise self.error(key, "an object", value)
        return value


class Unreadable:
    """A JSON number kept as text because it is no usable number (NaN, Infinity, an integer of more than
    MAX_INT_DIGITS digits, which int() would refuse or make huge): any key that reads it reports it."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return self.what


def _parse_int(text: str):
    digits = len(text.lstrip("-"))
    return Unreadable(f"an integer of {digits} digits") if digits > MAX_INT_DIGITS else int(text)


def _parse_constant(name: str):
    return Unreadable(f"{name} (not a number JSON allows)")


def read_config_file(path_or_dict) -> tuple[dict, str]:
    """(the config dict, where it came from for messages). A directory means its config.json."""
    if isinstance(path_or_dict, dict):
        return path_or_dict, "config"
    if not isinstance(path_or_dict, (str, os.PathLike)):
        raise ValueError(
            f"config must be a path to a config.json (or its directory) or a dict; got {type(path_or_dict).__name__}"
        )
    path = Path(path_or_dict)
    where = f"config file {str(path)!r}"
    try:
        if path.is_dir():
            path = path / "config.json"
            where = f"config file {str(path)!r}"
        st = path.stat()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read it: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{where} is not a regular file (expected a Hugging Face config.json)")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{where} is {st.st_size:,} bytes; a config.json is at most {MAX_CONFIG_BYTES:,} here")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ValueError(f"{where}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{where} is not UTF-8 text (expected a Hugging Face config.json)") from None
    try:
        data = json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
    except RecursionError:
        raise ValueError(f"{where} is nested too deeply to be a config.json") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON: {exc}") from None
    return data, where
