"""The small YAML subset that Ultralytics ``data.yaml`` files and our ``args.yaml`` use.

No dependency (PyYAML is not one). Read: top-level ``key: value`` lines, where a value is
a scalar (int, float, true/false, null/~, a plain or quoted string), a flow list
``[a, b]``, or an indented block below ``key:`` of ``- item`` lines (a list) or
``k: v`` lines (a mapping, e.g. ``names: {0: person}`` written one per line); ``#``
comments. Anything else (deeper nesting, anchors, multi-line strings) is an error naming
the file and line. Write: a flat mapping of scalars and lists of scalars.
"""
from __future__ import annotations

import json
import re
from typing import Any

_KEY = re.compile(r"^([^\s#'\"][^:#]*?|'[^']*'|\"[^\"]*\")\s*:(?:\s+(.*))?$")
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?|[-+]?\.inf|\.nan", re.IGNORECASE)


def _strip_comment(line: str) -> str:
    """``line`` without a ``#`` comment (a ``#`` inside quotes or a word is kept)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text: str, where: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return json.loads(text) if text[0] == '"' else text[1:-1].replace("''", "'")
    if text[:1] in "'\"[]{}&*!|>%@`":
        raise ValueError(f"{where}: {text!r} is beyond the simple YAML read here (scalars, "
                         f"[a, b] lists, one level of '- item' or 'key: value' blocks)")
    lowered = text.lower()
    if lowered in ("", "~", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text.replace("inf", "Infinity").replace("INF", "Infinity"))
    return text


def _flow_list(text: str, where: str) -> list:
    inner = text.strip()[1:-1].strip()
    if not inner:
        return []
    items = re.findall(r"""\s*('(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^,]+)\s*(?:,|$)""", inner)
    return [_scalar(item, where) for item in items]


def _value(text: str, where: str) -> Any:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return _flow_list(text, where)
    return _scalar(text, where)


def _key(text: str, where: str) -> Any:
    key = _scalar(text, where)
    return key if isinstance(key, (int, str)) else str(text)


def parse(text: str, source: str = "<yaml>") -> dict:
    """The mapping a simple YAML document describes (see the module docstring)."""
    result: dict = {}
    block_key = None  # the key whose indented block is being read
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        line = _strip_comment(raw)
        if not line.strip() or line.strip() == "---":
            continue
        indented = line[0].isspace()
        line = line.strip()
        if indented:
            if block_key is None:
                raise ValueError(f"{where}: unexpected indentation")
            _add_to_block(result, block_key, line, where)
            continue
        match = _KEY.match(line)
        if match is None:
            raise ValueError(f"{where}: expected 'key: value', got {line!r}")
        key, value = _key(match[1], where), match[2]
        if value is None or not value.strip():
            result[key], block_key = None, key
        else:
            result[key], block_key = _value(value, where), None
    return result


def _add_to_block(result: dict, key: Any, line: str, where: str) -> None:
    """One ``- item`` or ``k: v`` line of the block below ``key:``."""
    current = result[key]
    if line.startswith("- ") or line == "-":
        if current is None:
            current = result[key] = []
        if not isinstance(current, list):
            raise ValueError(f"{where}: a '- item' line inside the mapping {key!r}")
        current.append(_value(line[1:], where))
        return
    match = _KEY.match(line)
    if match is None or match[2] is None:
        raise ValueError(f"{where}: expected '- item' or 'key: value' below {key!r}, got {line!r}")
    if current is None:
        current = result[key] = {}
    if not isinstance(current, dict):
        raise ValueError(f"{where}: a 'key: value' line inside the list {key!r}")
    current[_key(match[1], where)] = _value(match[2], where)


_SPECIAL_FIRST = "'\"[]{}&*!|>%@`-?:,#"


def _needs_quotes(text: str) -> bool:
    """Whether a plain (unquoted) ``text`` would read back as something else."""
    return (not text or text != text.strip() or text[0] in _SPECIAL_FIRST or ": " in text
            or " #" in text or _scalar(text, "") != text)


def _dump_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        mantissa, e, exponent = repr(value).partition("e")
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else repr(value)  # YAML 1.1
    text = str(value)
    return json.dumps(text) if _needs_quotes(text) else text


def dump(mapping: dict) -> str:
    """``key: value`` lines for a flat mapping of scalars and lists of scalars."""
    lines = []
    for key, value in mapping.items():
        if isinstance(value, (list, tuple)):
            value = "[" + ", ".join(_dump_scalar(v) for v in value) + "]"
        else:
            value = _dump_scalar(value)
        lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"
