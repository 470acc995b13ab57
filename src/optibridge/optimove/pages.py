"""The audience page of GetCustomerSendDetailsByChannel: its wire shape and its decoding.

Pure functions of a page's bytes, so that a page can be decoded in another process
(``optibridge.offload``) while the event loop stores the one before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple, Required

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from optibridge.optimove.models import CustomerSendDetail

_Attributes = list[str | None] | str | None


@with_config(ConfigDict(coerce_numbers_to_str=True))  # a numeric CustomerID: its text
class _SendDetailRow(TypedDict, total=False):
    """One audience row as it comes off the wire."""

    CustomerID: Required[str]
    TemplateID: Required[int]
    ScheduledTime: Required[datetime]
    CustomerAttributes: _Attributes
    CustomerAttribute: _Attributes  # the 2016 live API's name, one delimited string [MOCK]


# One validation of the whole page from its bytes (parsing included) costs a tenth of
# validating 10,000 rows one by one: the audience pull is bound by it.
_SEND_DETAIL_PAGE = TypeAdapter(list[_SendDetailRow])


class UnreadablePage(ValueError):
    """A 200 whose body is not a page of audience rows; the message says what is wrong.

    One plain argument, so that it comes back whole from a decoding process (the client
    turns it into ``OptimoveUnexpectedResponse``)."""


class SendDetailColumns(NamedTuple):
    """A page's rows as columns (how a decoding process hands a page on)."""

    customer_ids: list[str]
    template_ids: list[int]
    scheduled_times: list[datetime]  # naive UTC; one object per distinct time
    attributes: list[tuple[str | None, ...]]


def send_detail_columns(body: bytes, count: int, delimiter: str) -> SendDetailColumns:
    """A page's rows as columns, each row with ``count`` attribute values in the order
    asked for."""
    try:
        rows = _SEND_DETAIL_PAGE.validate_json(body)
    except ValidationError as error:
        raise UnreadablePage(_page_problem(error, body)) from None
    return SendDetailColumns(
        [row["CustomerID"] for row in rows], [row["TemplateID"] for row in rows],
        _naive_times(row["ScheduledTime"] for row in rows),
        [_page_attributes(row.get("CustomerAttributes", row.get("CustomerAttribute")),
                          count, delimiter) for row in rows])


def decode_send_details(body: bytes, count: int, delimiter: str) -> list[CustomerSendDetail]:
    """A page's rows, each with ``count`` attribute values in the order asked for."""
    return list(map(CustomerSendDetail._make,
                    zip(*send_detail_columns(body, count, delimiter), strict=True)))


def _page_problem(error: ValidationError, body: bytes) -> str:
    """What is wrong with a page, in the words the other list calls use."""
    first = error.errors(include_url=False)[0]
    start = body[:300].decode(errors="replace")
    if first["type"] == "json_invalid":
        return f"answered 200 with a body that is not JSON: {start!r}"
    if not first["loc"]:
        return f"expected a JSON array, got {start!r}"
    where = ".".join(str(part) for part in first["loc"])
    return f"a row does not fit: {where}: {first['msg']}"


def _naive_times(values: Iterable[datetime]) -> list[datetime]:
    """Each time as naive UTC, converted once per distinct time: a page's rows share a
    few, and one object each pickles as one (the pickle's memo refers back to it)."""
    naive: dict[datetime, datetime] = {}
    times = []
    for value in values:
        found = naive.get(value)
        if found is None:
            found = naive[value] = _naive_utc(value)
        times.append(found)
    return times


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def parse_attributes(raw: Any, count: int, delimiter: str) -> tuple[str | None, ...]:
    """Positional attribute values from a JSON array or one delimited string.

    A missing position is None. In the delimited form an empty value stays "" (the form
    cannot tell empty from null) and a delimiter inside a value cannot be told apart.
    """
    if raw is None:
        values: list[str | None] = []
    elif isinstance(raw, str):
        values = list(raw.split(delimiter)) if raw != "" or count == 1 else []
    elif isinstance(raw, list):
        values = [None if item is None else str(item) for item in raw]
    else:
        values = [str(raw)]
    values = values[:count] if count else values
    return tuple(values + [None] * (count - len(values)))


def _page_attributes(raw: _Attributes, count: int, delimiter: str) -> tuple[str | None, ...]:
    """``parse_attributes`` for a validated page row: its array is list[str | None]
    already, so the common case (one value per attribute asked for) is the array as it is."""
    if type(raw) is list and len(raw) == count:
        return tuple(raw)
    return parse_attributes(raw, count, delimiter)
