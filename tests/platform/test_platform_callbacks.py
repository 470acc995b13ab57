"""parse_callback / encode_callback: properties, malformed bodies, size and speed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optibridge.domain import ChannelType
from optibridge.platform import callbacks
from optibridge.platform.api import SMS_EVENTS, CallbackBatch, MessageEvent
from optibridge.platform.callbacks import CallbackError, encode_callback, parse_callback

# Any text but NUL, which the parser refuses (see test_a_nul_in_an_address_is_refused).
_characters = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
addresses = st.lists(st.text(_characters, min_size=1, max_size=30).filter(str.strip),
                     min_size=1, max_size=40)


@st.composite
def batches(draw: st.DrawFn) -> CallbackBatch:
    channel = draw(st.sampled_from(ChannelType))
    events = sorted(SMS_EVENTS) if channel is ChannelType.SMS else list(MessageEvent)
    return CallbackBatch(event=draw(st.sampled_from(events)),
                         when=draw(st.integers(0, 2**33)), channel_type=channel,
                         addresses=tuple(draw(addresses)))


@contextmanager
def bulk_path(enabled: bool) -> Iterator[None]:
    saved = callbacks._BULK_FROM
    callbacks._BULK_FROM = 0 if enabled else 10**12
    try:
        yield
    finally:
        callbacks._BULK_FROM = saved


def parse_both(body: bytes, query: str = "") -> CallbackBatch:
    """Parse with the bulk path and with the careful path: both must agree exactly."""
    results: list[CallbackBatch | str] = []
    for enabled in (True, False):
        with bulk_path(enabled):
            try:
                results.append(parse_callback(body, query))
            except CallbackError as error:
                results.append(f"error: {type(error).__name__}")
    assert results[0] == results[1]
    if isinstance(results[0], str):
        raise CallbackError(results[0])
    return results[0]


@pytest.mark.parametrize("body", [
    b"event=opened&when=1&email[0]=a%00b@example.com",
    b"event=opened&when=1&email[0]=a@example.com&email[1]=%00",
    b"event=opened&when=1&" + b"&".join(b"email[%d]=a%d@example.com" % (i, i)
                                         for i in range(500)) + b"&email[500]=z%00",
])
def test_a_nul_in_an_address_is_refused(body: bytes) -> None:
    for enabled in (True, False):
        with bulk_path(enabled), pytest.raises(CallbackError, match="NUL"):
            parse_callback(body)


@given(batches())
@settings(max_examples=300)
def test_encode_then_parse_is_identity(batch: CallbackBatch) -> None:
    assert parse_both(encode_callback(batch)) == batch


@given(batches(), st.randoms(use_true_random=False), st.booleans())
@settings(max_examples=200)
def test_field_order_and_key_escaping_do_not_matter(
        batch: CallbackBatch, rng: random.Random, escape_keys: bool) -> None:
    fields = encode_callback(batch).decode().split("&")
    rng.shuffle(fields)
    if escape_keys:  # what PHP's http_build_query sends: email%5B0%5D=...
        fields = [quote(key, safe="") + "=" + value
                  for key, _, value in (f.partition("=") for f in fields)]
    assert parse_both("&".join(fields).encode()) == batch


@given(batches())
def test_repeated_brackets_keep_order(batch: CallbackBatch) -> None:
    name = "email" if batch.channel_type is ChannelType.EMAIL else "telephone"
    body = "&".join([f"when={batch.when}", *(f"{name}[]={quote(a, safe='')}"
                                             for a in batch.addresses),
                     f"event={batch.event.value}"])
    assert parse_both(body.encode()) == batch


@given(st.binary(max_size=300))
@example(b"event=opened&when=1&email[0]=%ff")
@example(b"\xff\xfe")
def test_arbitrary_bytes_raise_only_callback_error(body: bytes) -> None:
    with suppress(CallbackError):
        parse_both(body)


@given(batches(), st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_bodies_parse_the_same_both_ways_or_raise(
        batch: CallbackBatch, data: st.DataObject) -> None:
    body = bytearray(encode_callback(batch))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = data.draw(st.sampled_from([b"&", b"=", b"[", b"]", b"%", b"%26", b"0", b"1",
                                           b"email[1]=x", b"telephone[0]=+1", b"", b"\xc3"]))
        if action == "insert":
            body[at:at] = piece
        elif action == "delete":
            del body[at:at + len(piece) + 1]
        else:
            body[at:at + 1] = piece
    try:
        result = parse_both(bytes(body))
    except CallbackError:
        return
    assert result.addresses and all(a.strip() for a in result.addresses)


@pytest.mark.parametrize(("body", "reason"), [
    (b"event=sent&when=1&email[0]=a@x.io", "unknown event 'sent'"),
    (b"when=1&email[0]=a@x.io", "'event' is missing"),
    (b"event=opened&email[0]=a@x.io", "'when' is missing"),
    (b"event=opened&when=1&when=2&email[0]=a@x.io", "'when' occurs more than once"),
    (b"event=opened&when=soon&email[0]=a@x.io", "'when' is not a Unix time"),
    (b"event=opened&when=-5&email[0]=a@x.io", "'when' is not a Unix time"),
    (b"event=opened&event=opened&when=1&email[0]=a@x.io", "'event' occurs more than once"),
    (b"event=opened&when=1&email[0]=a@x.io&email[2]=b@x.io", "indexes have a gap"),
    (b"event=opened&when=1&email[0]=a@x.io&email[0]=b@x.io", "email[0] occurs more than once"),
    (b"event=opened&when=1&email[00]=a@x.io", "no valid index"),
    (b"event=opened&when=1&email[x]=a@x.io", "no valid index"),
    (b"event=delivered&when=1&email[0]=a@x.io&telephone[0]=%2B1", "mixes email"),
    (b"event=opened&when=1&telephone[0]=%2B4912", "SMS (telephone[]) has no 'opened'"),
    (b"event=opened&when=1", "no email[] or telephone[] address"),
    (b"event=opened&when=1&email[0]=", "email[0] is empty"),
    (b"event=opened&when=1&email[0]=+", "email[0] is empty"),
    (b"event=opened&when=1&email[0]=a@x.io&token=abc", "unknown field 'token'"),
    (b"event=opened&when=1&email[0]=a@x.io&fax[0]=1", "unknown field 'fax[0]'"),
    (b"event=opened&when=1&email[0]=a@x.io&email[]=b@x.io", "mixes email[] with indexed"),
    (b"event=opened&when=1&email[0]", "has no '='"),
    (b"event=opened&when=1&email[0]=\xff", "not valid UTF-8"),
    (b"event=opened&when=1&email[0]=%ff", "not valid UTF-8"),
])
def test_malformed_bodies_say_why(body: bytes, reason: str) -> None:
    for bulk in (True, False):  # the bulk path declines, the careful path explains
        with bulk_path(bulk), pytest.raises(CallbackError) as error:
            parse_callback(body)
        assert reason in str(error.value)


def test_oversize_body_is_refused_before_parsing() -> None:
    with pytest.raises(CallbackError, match="over the limit of 100"):
        parse_callback(b"x" * 101, max_bytes=100)


def test_query_is_kept_apart_from_body_fields() -> None:
    body = b"event=delivered&when=1700000000&telephone[0]=%2B4915112345678"
    batch = parse_callback(body, "event=clicked&when=5&token=s%20cret&empty=")
    assert batch.event is MessageEvent.DELIVERED and batch.when == 1_700_000_000
    assert batch.channel_type is ChannelType.SMS
    assert batch.addresses == ("+4915112345678",)
    assert batch.query == {"event": "clicked", "when": "5", "token": "s cret", "empty": ""}
    with pytest.raises(CallbackError, match="query parameter 'a' occurs more than once"):
        parse_callback(body, "a=1&a=2")


def test_two_hundred_thousand_addresses_parse_in_any_order() -> None:
    """A 9 MB callback parses whole; its speed is `bench ingest-batched`'s figure."""
    addresses = tuple(f"customer.{i}+promo@example-{i % 89}.com" for i in range(200_000))
    batch = CallbackBatch(MessageEvent.SUBMITTED, 1_700_000_000, ChannelType.EMAIL, addresses)
    body = encode_callback(batch)
    assert len(body) > 9_000_000
    parsed = parse_callback(body, "tenant=acme")
    assert parsed.addresses == addresses and parsed.query == {"tenant": "acme"}
    shuffled = body.split(b"&")
    random.Random(3).shuffle(shuffled)
    assert parse_callback(b"&".join(shuffled)).addresses == addresses
