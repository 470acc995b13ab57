"""Event callbacks of the platform (seed 003): parse and encode, as pure functions.

A callback is a form-encoded POST: ``event``, ``when`` and either ``email[0..n]`` or
``telephone[0..n]`` (``email[]`` repeated is accepted too). One callback may carry hundreds of
thousands of addresses, so the body is parsed by hand from the raw bytes: web frameworks' form
parsers cap the number of fields (Starlette: 1,000) and are far slower on this shape.
"""

from __future__ import annotations

import operator
import re
from urllib.parse import parse_qsl, quote_plus, unquote_plus

from optibridge.domain import ChannelType
from optibridge.platform.api import SMS_EVENTS, CallbackBatch, MessageEvent

MAX_CALLBACK_BYTES = 32 * 1024 * 1024
_BULK_FROM = 2048  # bytes; module-level so that tests can force either path
_KINDS = {"email": ChannelType.EMAIL, "telephone": ChannelType.SMS}
_FIELD_OF = {ChannelType.EMAIL: "email", ChannelType.SMS: "telephone"}
_EVENTS = {event.value: event for event in MessageEvent}

# Fast path shapes: a body of "key=value" pairs without empty segments, a canonical index list.
_FORM = re.compile(r"[^&=]+=[^&=]*(?:&[^&=]+=[^&=]*)*")
_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}")
_INDEXES = re.compile(r"(?:0|[1-9][0-9]*)(?:,(?:0|[1-9][0-9]*))*")
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~@-")
# quote_plus(safe="@") for ASCII text as one str.translate table: C speed, no per-char Python.
_QUOTE_ASCII = {code: (chr(code) if chr(code) in _SAFE else "+" if code == 32 else f"%{code:02X}")
                for code in range(128)}
_SEPARATOR = "\uffff"  # not ASCII, so translate leaves it alone


class CallbackError(ValueError):
    """The callback is malformed; the message says what is wrong with it."""


def _show(text: str, limit: int = 60) -> str:
    """A field name or value for an error message, cut short: bodies can be huge."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _unquote(text: str, what: str) -> str:
    # Fast path: most keys and addresses need no decoding at all.
    if "%" not in text and "+" not in text:
        return text
    try:
        return unquote_plus(text, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise CallbackError(f"callback: {what} is not valid UTF-8 once decoded") from None


class _Fields:
    """What the body held, collected in one pass."""

    def __init__(self) -> None:
        self.event: str | None = None
        self.when: str | None = None
        self.kind: str | None = None
        self.indexed: list[tuple[int, str]] = []
        self.appended: list[str] = []
        self.in_order: list[str] | None = None  # set by the fast path for email[0..n-1]

    def add_scalar(self, key: str, value: str) -> None:
        if getattr(self, key) is not None:
            raise CallbackError(f"callback: field {key!r} occurs more than once")
        setattr(self, key, value)

    def add_address(self, kind: str, index: str, value: str) -> None:
        if kind not in _KINDS:
            raise CallbackError(f"callback: unknown field {_show(kind + '[' + index + ']')}")
        if self.kind is None:
            self.kind = kind
        elif self.kind != kind:
            raise CallbackError("callback: mixes email[] and telephone[] addresses")
        if not value.strip():
            raise CallbackError(f"callback: {kind}[{index}] is empty")
        if index == "":
            self.appended.append(value)
            return
        if not (index.isascii() and index.isdigit()) or (len(index) > 1 and index[0] == "0"):
            raise CallbackError(f"callback: {_show(kind + '[' + index + ']')} "
                                "has no valid index (a non-negative integer)")
        self.indexed.append((int(index), value))


def _collect(text: str) -> _Fields:
    fields = _Fields()
    for part in text.split("&"):
        if not part:
            continue  # "a=1&&b=2" and a trailing "&" are harmless
        raw_key, sep, raw_value = part.partition("=")
        if not sep:
            raise CallbackError(f"callback: field {_show(raw_key)} has no '='")
        key = _unquote(raw_key, "a field name")
        value = _unquote(raw_value, f"the value of {_show(key)}")
        if key.endswith("]"):
            kind, bracket, index = key[:-1].partition("[")
            if not bracket:
                raise CallbackError(f"callback: unknown field {_show(key)}")
            fields.add_address(kind, index, value)
        elif key in ("event", "when"):
            fields.add_scalar(key, value)
        else:
            raise CallbackError(f"callback: unknown field {_show(key)}")
    return fields


def _bulk_unquote(body: bytes) -> str | None:
    """``unquote_plus`` of a pure-ASCII body, one ``bytes.replace`` per distinct escape.

    Replacing escapes one kind at a time equals the left-to-right decoding because no escape
    but ``%25`` produces a '%', and ``%25`` goes last. None if there are too many kinds or the
    result is not UTF-8 (the careful path then explains).
    """
    body = body.replace(b"+", b" ")
    escapes = set(_ESCAPE.findall(body))
    if len(escapes) > 24:
        return None
    for escape in sorted(escapes, key=lambda item: item.upper() == b"%25"):
        body = body.replace(escape, bytes([int(escape[1:], 16)]))
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _fast_collect(body: bytes) -> _Fields | None:
    """The usual well-formed big body, checked and collected with C-speed str calls.

    Returns None whenever anything is unusual; the careful path (``_collect``) then parses the
    body field by field and raises a precise error if it is malformed. Both accept the same
    bodies with the same result; this one exists because 200,000 addresses must parse in well
    under a second, and a Python loop over the fields does not.
    """
    # Without encoded '&' or '=', decoding the whole body first cannot change its fields.
    if not body.isascii() or b"%26" in body or b"%3D" in body or b"%3d" in body:
        return None
    text = _bulk_unquote(body)
    if text is None or _FORM.fullmatch(text) is None:
        return None
    # Every field is exactly "key=value" (checked above): keys and values alternate.
    flat = text.replace("=", "&").split("&")
    keys, values = flat[0::2], flat[1::2]
    if keys.count("event") != 1 or keys.count("when") != 1:
        return None
    fields = _Fields()
    for name in ("event", "when"):
        position = keys.index(name)
        setattr(fields, name, values.pop(position))
        del keys[position]
    if not keys or not all(map(str.strip, values)):
        return None
    fields.kind = keys[0].partition("[")[0]
    if fields.kind not in _KINDS:
        return None
    prefix = fields.kind + "["
    # The expected keys one at a time (a list of them would cost as much as the body).
    if all(map(operator.eq, keys, map(f"{prefix}{{}}]".format, range(len(keys))))):
        fields.in_order = values  # the usual shape: in order, canonical indexes
        return fields
    start = len(prefix)
    if not all(key.startswith(prefix) and key.endswith("]") for key in keys):
        return None
    indexes = [key[start:-1] for key in keys]
    if _INDEXES.fullmatch(",".join(indexes)) is None:
        return None
    fields.indexed = list(zip(map(int, indexes), values, strict=True))
    return fields


def _ordered(fields: _Fields) -> tuple[str, ...]:
    """Addresses in index order; every index 0..n-1 exactly once."""
    if fields.in_order is not None:
        return tuple(fields.in_order)
    if fields.indexed and fields.appended:
        raise CallbackError(f"callback: mixes {fields.kind}[] with indexed {fields.kind}[i]")
    if not fields.indexed:
        return tuple(fields.appended)
    count = len(fields.indexed)
    slots: list[str | None] = [None] * count
    for index, value in fields.indexed:
        # n distinct indexes all below n cover 0..n-1: no gap is possible.
        if index >= count:
            raise CallbackError(f"callback: {fields.kind}[] indexes have a gap "
                                f"({count} addresses, index {index})")
        if slots[index] is not None:
            raise CallbackError(f"callback: {fields.kind}[{index}] occurs more than once")
        slots[index] = value
    return tuple(slots)  # type: ignore[arg-type]  # every slot is filled (see above)


def _event(fields: _Fields, channel: ChannelType) -> MessageEvent:
    if fields.event is None:
        raise CallbackError("callback: field 'event' is missing")
    event = _EVENTS.get(fields.event)
    if event is None:
        raise CallbackError(f"callback: unknown event {_show(fields.event)}")
    if channel is ChannelType.SMS and event not in SMS_EVENTS:
        raise CallbackError(f"callback: SMS (telephone[]) has no {event.value!r} event, only "
                            "delivered and bounced")
    return event


def _when(fields: _Fields) -> int:
    if fields.when is None:
        raise CallbackError("callback: field 'when' is missing")
    if not (fields.when.isascii() and fields.when.isdigit()) or len(fields.when) > 12:
        raise CallbackError(f"callback: 'when' is not a Unix time in seconds: "
                            f"{_show(fields.when)}")
    return int(fields.when)


def parse_query(query: str) -> dict[str, str]:
    """The event_callback URL's query string, which the platform forwards unchanged."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise CallbackError("callback: query string is not valid UTF-8") from None
    result: dict[str, str] = {}
    for key, value in pairs:
        if key in result:
            raise CallbackError(f"callback: query parameter {_show(key)} occurs more than once")
        result[key] = value
    return result


def parse_callback(body: bytes, query: str = "", *,
                   max_bytes: int = MAX_CALLBACK_BYTES) -> CallbackBatch:
    """One callback's form body (and the request's query string) as a typed batch.

    Raises ``CallbackError`` for anything malformed, never another exception.
    """
    if len(body) > max_bytes:
        raise CallbackError(f"callback: body of {len(body)} bytes is over the limit of "
                            f"{max_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise CallbackError("callback: body is not valid UTF-8") from None
    # The bulk path pays off on big bodies; small ones take the careful path directly.
    fields = (_fast_collect(body) if len(body) > _BULK_FROM else None) or _collect(text)
    if fields.kind is None:
        raise CallbackError("callback: carries no email[] or telephone[] address")
    channel = _KINDS[fields.kind]
    event = _event(fields, channel)
    when = _when(fields)
    addresses = _ordered(fields)
    if "\x00" in "".join(addresses):  # one C-speed scan; PostgreSQL text refuses NUL
        index = next(i for i, address in enumerate(addresses) if "\x00" in address)
        raise CallbackError(f"callback: {fields.kind}[{index}] contains a NUL character")
    return CallbackBatch(event=event, when=when, channel_type=channel, addresses=addresses,
                         query=parse_query(query))


def encode_callback(batch: CallbackBatch) -> bytes:
    """The form body the platform POSTs for ``batch`` (its ``query`` belongs in the URL)."""
    if not batch.addresses:
        raise CallbackError("callback: a batch needs at least one address")
    if batch.channel_type is ChannelType.SMS and batch.event not in SMS_EVENTS:
        raise CallbackError(f"callback: SMS has no {batch.event.value!r} event")
    if batch.when < 0:
        raise CallbackError("callback: 'when' must not be negative")
    name = _FIELD_OF[batch.channel_type]
    parts = [f"event={batch.event.value}", f"when={batch.when}"]
    parts.extend(f"{name}[{index}]={address}"
                 for index, address in enumerate(_quote_all(batch.addresses)))
    return "&".join(parts).encode("ascii")


def _quote_all(addresses: tuple[str, ...]) -> list[str]:
    """Each address form-encoded (``quote_plus`` with '@' kept), in bulk when all are ASCII."""
    if all(map(str.isascii, addresses)):
        return _SEPARATOR.join(addresses).translate(_QUOTE_ASCII).split(_SEPARATOR)
    return [quote_plus(address, safe="@") for address in addresses]
