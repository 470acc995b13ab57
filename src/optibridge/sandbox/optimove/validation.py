"""Strict request checks: each failure names the field and the rule it broke.

The sandbox is stricter than Optimove is known to be (unknown fields are refused, names are
case-sensitive) so that a connector bug shows up here rather than in a client's account.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

INT32_MAX = 2**31 - 1
_INT = re.compile(r"^-?\d{1,19}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Invalid(Exception):
    """A 400 answer: ``field`` is the offending name, ``rule`` what it must be."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def as_object(value: Any, field: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    """A JSON object with only ``allowed`` keys and all ``required`` ones."""
    if not isinstance(value, dict):
        raise Invalid(field, "must be a JSON object")
    for key in value:
        if key not in allowed:
            raise Invalid(key if field == "body" else f"{field}.{key}", "unknown field")
    for key in sorted(required):
        if value.get(key) is None:
            raise Invalid(key if field == "body" else f"{field}.{key}", "is required")
    return value


def as_array(value: Any, field: str, max_items: int, *, non_empty: bool = True) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(field, "must be a JSON array")
    if non_empty and not value:
        raise Invalid(field, "must not be empty")
    if len(value) > max_items:
        raise Invalid(field, f"at most {max_items} items, got {len(value)}")
    return value


def as_int(value: Any, field: str, *, low: int = 0, high: int = INT32_MAX,
           allowed: frozenset[int] | None = None) -> int:
    # JSON true/false are bools in Python, which are ints: refuse them explicitly.
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(field, "must be an integer")
    if allowed is not None and value not in allowed:
        raise Invalid(field, f"must be one of {sorted(allowed)}")
    if not low <= value <= high:
        raise Invalid(field, f"must be between {low} and {high}")
    return value


def as_str(value: Any, field: str, *, max_length: int = 1_000) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(field, "must be a non-empty string")
    if len(value) > max_length:
        raise Invalid(field, f"at most {max_length} characters")
    return value


def as_str_list(value: Any, field: str, max_items: int) -> tuple[str, ...]:
    items = as_array(value, field, max_items)
    for item in items:
        if not isinstance(item, str) or not item.strip() or len(item) > 200:
            raise Invalid(field, "every item must be a non-empty string of at most 200 "
                                 "characters")
    return tuple(items)


def as_date(value: Any, field: str) -> date:
    if not isinstance(value, str) or not _DATE.match(value):
        raise Invalid(field, "must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(field, "must be a real date YYYY-MM-DD") from None


def optional(data: Mapping[str, Any], key: str) -> Any:
    return data.get(key)


def query_map(items: Sequence[tuple[str, str]], allowed: set[str]) -> dict[str, str]:
    """Query parameters, each at most once and all known."""
    found: dict[str, str] = {}
    for key, value in items:
        if key not in allowed:
            raise Invalid(key, "unknown query parameter")
        if key in found:
            raise Invalid(key, "given more than once")
        found[key] = value
    return found


def query_int(query: Mapping[str, str], name: str, *, required: bool, default: int = 0,
              low: int = 0, high: int = INT32_MAX) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        if required:
            raise Invalid(name, "is required")
        return default
    if not _INT.match(raw):
        raise Invalid(name, "must be an integer")
    value = int(raw)
    if not low <= value <= high:
        raise Invalid(name, f"must be between {low} and {high}")
    return value
