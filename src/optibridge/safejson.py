"""JSON bodies from outside, decoded with limits so that no body can make us fail.

``json.loads`` alone lets through what later breaks a worker or a database: nesting deep
enough for a RecursionError, ``1e400`` (infinity, which no integer conversion takes), integers
with thousands of digits, NaN, NUL characters (PostgreSQL text refuses them) and lone
surrogates (not encodable as UTF-8). ``loads`` refuses each with a message naming it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from optibridge.refusals import Refusal, Refused

MAX_DEPTH = 32
MAX_INT_DIGITS = 19  # every integer a 64-bit signed column holds, and then some
INT64 = 2**63


class JsonBodyError(Refused):
    """The body is not JSON we accept; the message says why."""


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonBodyError(f"number {text[:30]}... has more than {MAX_INT_DIGITS} digits")
    number = int(text)
    if not -INT64 <= number < INT64:
        raise JsonBodyError(f"number {number} does not fit in 64 bits")
    return number


def _float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise JsonBodyError(f"number {text[:30]} is out of range")
    return number


def _constant(name: str) -> Any:
    raise JsonBodyError(f"{name} is not a JSON number")


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise JsonBodyError(f"{where} contains a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonBodyError(f"{where} contains a lone surrogate (not UTF-8)") from None


def _check(value: Any) -> None:
    """Depth and text of every value, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, "a string")
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise JsonBodyError(f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key in item:
                    _check_text(key, "a field name")
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)


def loads(body: bytes) -> Any:
    """Decode a JSON body, refusing what no part of us can use (``JsonBodyError``)."""
    try:
        data = json.loads(body, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except JsonBodyError:
        raise
    except RecursionError:
        raise JsonBodyError(f"body is not JSON we accept: nested deeper than {MAX_DEPTH} "
                            "levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise JsonBodyError(f"body is not JSON: {error}") from None
    except ValueError as error:  # anything else the decoder raises about the text
        raise JsonBodyError(f"body is not JSON: {error}") from None
    _check(data)
    return data


def bounded_id(number: int, name: str, bits: int = 63) -> int:
    """``number`` if a signed column of ``bits`` + 1 bits holds it, else ``JsonBodyError``."""
    if not -(2**bits) <= number < 2**bits:
        raise JsonBodyError(f"{name} {number} is out of range (at most {2**bits - 1})")
    return number


def json_object(body: bytes, limit: int) -> dict[str, Any]:
    """The body as a JSON object: refused when over ``limit`` bytes, not JSON we accept, or
    not an object."""
    if len(body) > limit:
        raise Refused(f"body is {len(body)} bytes, at most {limit}", Refusal.TOO_LARGE)
    data = loads(body)
    if not isinstance(data, dict):
        raise JsonBodyError("body must be a JSON object")
    return data


def id_field(value: Any, name: str, *, required: bool = False, bits: int = 63) -> int | None:
    """An ID from a JSON value, a number or its decimal text (None when absent and not
    ``required``): never negative, and held by a signed column of ``bits`` + 1 bits."""
    if value is None or value == "":
        if required:
            raise JsonBodyError(f"{name} is missing")
        return None
    if isinstance(value, (bool, dict, list)):
        raise JsonBodyError(f"{name} must be an integer, got {json.dumps(value)[:60]}")
    try:
        number = int(value) if isinstance(value, float) and value.is_integer() \
            else int(str(value).strip())
    except ValueError:
        raise JsonBodyError(f"{name} must be an integer, got {str(value)[:60]!r}") from None
    if number < 0:
        raise JsonBodyError(f"{name} must not be negative, got {number}")
    return bounded_id(number, name, bits)
