"""Writing TOML: the one writer for ``check-config``, the test rig and the tests.

Why our own: Python reads TOML (tomllib) but does not write it, and the daemon must not grow a
dependency for ``check-config``. This writes what the settings hold (tables, arrays of tables,
scalars, lists, inline tables) and quotes every key and string that needs it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else string(name)


def string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def value(v: Any) -> str:
    """A TOML value for a scalar, a list or an inline table (None inside a list is left out)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str | PurePath):
        return string(str(v))
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v if x is not None) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list | tuple) and bool(v) and all(isinstance(x, Mapping) for x in v)


def dumps(data: Mapping[str, Any], *, show_unset: bool = False) -> str:
    """``data`` as a TOML document. None values are left out, or written as comments with ``show_unset``."""
    out: list[str] = []
    _table(out, [], data, show_unset, header=False)
    return "\n".join(out).lstrip("\n") + "\n"


def _table(out: list[str], path: list[str], data: Mapping[str, Any], show_unset: bool, *, header: bool,
           array: bool = False) -> None:
    nested = {k: v for k, v in data.items() if isinstance(v, Mapping) or _is_table_array(v)}
    if header:
        out.append("")
        name = ".".join(key(p) for p in path)
        out.append(f"[[{name}]]" if array else f"[{name}]")
    for k, v in data.items():
        if k in nested:
            continue
        if v is None:
            if show_unset:
                out.append(f"# {key(k)} = (unset)")
            continue
        out.append(f"{key(k)} = {value(v)}")
    for k, v in nested.items():
        if isinstance(v, Mapping):
            _table(out, [*path, k], v, show_unset, header=True)
        else:
            for item in v:
                _table(out, [*path, k], item, show_unset, header=True, array=True)


def overlay(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` on top of ``base``, table by table: later keys win (for test and demo configs)."""
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            overlay(base[k], v)
        else:
            base[k] = v
    return base
