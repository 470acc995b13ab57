"""Request parameter checking of the sandbox: every failure names the parameter."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
E164 = re.compile(r"\+[1-9][0-9]{1,14}")


class ApiError(Exception):
    """An answer other than 2xx: status and the ``{"error": ...}`` message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad(message: str) -> ApiError:
    return ApiError(400, message)


class Params:
    """Form parameters of one request; each may be read once, leftovers are unknown."""

    def __init__(self, pairs: Sequence[tuple[str, str]], allowed: set[str]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            if key not in allowed:
                raise bad(f"unknown parameter {key!r}")
            self._values.setdefault(key, []).append(value)

    def has(self, name: str) -> bool:
        return name in self._values

    def text(self, name: str, required: bool = False) -> str | None:
        values = self._values.get(name)
        if values is None:
            if required:
                raise bad(f"{name}: missing")
            return None
        if len(values) > 1:
            raise bad(f"{name}: given more than once")
        return values[0]

    def integer(self, name: str, required: bool = False) -> int | None:
        value = self.text(name, required)
        if value is None:
            return None
        return to_int(name, value)

    def integers(self, name: str) -> list[int]:
        return [to_int(name, value) for value in self._values.get(name, [])]


def to_int(name: str, value: str) -> int:
    text = value.strip()
    if not text.lstrip("-").isdigit() or not text.isascii():
        raise bad(f"{name}: {value[:40]!r} is not an integer")
    return int(text)


def parse_when(value: str) -> int:
    """``when``: Unix seconds (int) or an ISO 8601 string with a UTC offset."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise bad(f"when: {value[:40]!r} is neither a Unix time nor ISO 8601") from None
    if moment.tzinfo is None:
        raise bad("when: an ISO 8601 time needs a UTC offset (e.g. Z or +00:00)")
    return int(moment.timestamp())


def callback_url(value: str) -> str | None:
    if not value:
        return None
    if not value.startswith(("http://", "https://")) or len(value) > 2048:
        raise bad("event_callback: must be an http:// or https:// URL")
    return value


def page(query: dict[str, str]) -> tuple[int, int]:
    """``offset`` and ``limit`` (1..1000, default 100) of a listing request."""
    unknown = set(query) - {"offset", "limit"}
    if unknown:
        raise bad(f"unknown parameter {sorted(unknown)[0]!r}")
    offset = to_int("offset", query.get("offset", "0"))
    limit = to_int("limit", query.get("limit", "100"))
    if offset < 0:
        raise bad("offset: must be >= 0")
    if not 1 <= limit <= 1000:
        raise bad("limit: must be 1..1000")
    return offset, limit


def contact_row(row: Any) -> tuple[str | None, str | None, dict[str, str]]:
    """One contact of an import, or ValueError with the reason it is rejected."""
    if not isinstance(row, dict):
        raise ValueError("a contact must be a JSON object")
    unknown = set(row) - {"email", "telephone", "fields"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    email, telephone, fields = row.get("email"), row.get("telephone"), row.get("fields", {})
    if email is None and telephone is None:
        raise ValueError("needs an email or a telephone")
    if email is not None and (not isinstance(email, str) or not EMAIL.fullmatch(email)):
        raise ValueError(f"email {str(email)[:60]!r} is not an email address")
    if telephone is not None and (not isinstance(telephone, str)
                                  or not E164.fullmatch(telephone)):
        raise ValueError(f"telephone {str(telephone)[:30]!r} is not E.164 (+ and digits)")
    if not isinstance(fields, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        raise ValueError("fields must map names to strings")
    return email, telephone, dict(fields)
