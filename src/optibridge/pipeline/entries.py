"""Audience rows to entries: the addresses normalized, the personalization encoded.

Kept free of the store and the clients, so that a decoding process (``optibridge.offload``)
imports only this, the config and the page's wire shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from optibridge.config import ChannelConfig
from optibridge.domain import AudiencePage, ChannelType, FieldsJson, fields_json
from optibridge.optimove.pages import SendDetailColumns, send_detail_columns

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def usable_address(value: str | None, channel_type: ChannelType) -> str | None:
    """The address normalized for the platform, or None when it cannot receive."""
    if value is None:
        return None
    value = value.strip()
    if channel_type == ChannelType.EMAIL:
        return value.lower() if len(value) <= 320 and _EMAIL.match(value) else None
    compact = re.sub(r"[\s()-]", "", value)
    return compact if _E164.match(compact) else None


def requested_attributes(channel: ChannelConfig) -> list[str]:
    """The address attribute first, then the personalization tags (seed 002)."""
    return [channel.address_attribute,
            *(name for name in channel.personalization if name != channel.address_attribute)]


class EntryMaker:
    """Turns one channel's audience rows into entries; where each attribute sits in a row
    is worked out once per pull, not once per row. Small and picklable: it goes with each
    page to the decoding process."""

    def __init__(self, channel: ChannelConfig, names: Sequence[str]) -> None:
        self.channel_type = channel.type
        self.address_at = names.index(channel.address_attribute)
        defaults = channel.personalization_defaults
        self.fields = [(name, names.index(name), defaults.get(name, ""))
                       for name in channel.personalization]

    def page(self, rows: SendDetailColumns) -> AudiencePage:
        at, channel_type = self.address_at, self.channel_type
        return AudiencePage(
            rows.customer_ids, rows.template_ids, rows.scheduled_times,
            [usable_address(values[at], channel_type) for values in rows.attributes],
            [self._fields(values) for values in rows.attributes])

    def _fields(self, values: tuple[str | None, ...]) -> FieldsJson | None:
        return fields_json({name: values[at] or default for name, at, default in self.fields})


def decode_entries(body: bytes, count: int, delimiter: str, to_entry: EntryMaker
                   ) -> AudiencePage:
    """An audience page's entries from its body (``count`` attributes asked for)."""
    return to_entry.page(send_detail_columns(body, count, delimiter))
