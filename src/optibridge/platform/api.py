"""The small interface the pipeline uses to drive the execution platform.

Only ``optibridge.platform`` knows the platform's own words (list, payload, domain) and its
HTTP contract; the pipeline sees these types and the ``Platform`` protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple, Protocol

from optibridge.domain import ChannelType, FieldsJson


class CampaignState(StrEnum):
    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    READY = "READY"
    SENDING = "SENDING"
    DONE = "DONE"
    ERROR = "ERROR"


# Seed 003: DRAFT <-> SCHEDULED <-> READY => SENDING => (DONE | ERROR). A state may be
# re-sent as itself (idempotent PUT). Moves against the arrows are refused.
ALLOWED_MOVES: Mapping[CampaignState, frozenset[CampaignState]] = {
    CampaignState.DRAFT: frozenset({CampaignState.DRAFT, CampaignState.SCHEDULED}),
    CampaignState.SCHEDULED: frozenset(
        {CampaignState.SCHEDULED, CampaignState.DRAFT, CampaignState.READY}),
    CampaignState.READY: frozenset(
        {CampaignState.READY, CampaignState.SCHEDULED, CampaignState.SENDING}),
    CampaignState.SENDING: frozenset(
        {CampaignState.SENDING, CampaignState.DONE, CampaignState.ERROR}),
    CampaignState.DONE: frozenset({CampaignState.DONE}),
    CampaignState.ERROR: frozenset({CampaignState.ERROR}),
}

FINAL_STATES = frozenset({CampaignState.DONE, CampaignState.ERROR})


def can_move(current: CampaignState, target: CampaignState) -> bool:
    return target in ALLOWED_MOVES[current]


class MessageEvent(StrEnum):
    """Message lifecycle events of seed 003."""

    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    OPENED = "opened"
    CLICKED = "clicked"


SMS_EVENTS = frozenset({MessageEvent.DELIVERED, MessageEvent.BOUNCED})


class Contact(NamedTuple):
    """One recipient as the platform stores it: an address and personalization fields
    (a mapping, or the store's JSON text of one). A tuple: an upload makes 10,000."""

    email: str | None = None
    telephone: str | None = None
    fields: Mapping[str, str] | FieldsJson = MappingProxyType({})


@dataclass(frozen=True)
class RejectedContact:
    index: int  # position in the sequence given to add_contacts
    error: str


@dataclass(frozen=True)
class ImportResult:
    added: int
    rejected: tuple[RejectedContact, ...] = ()


@dataclass(frozen=True)
class PlatformCampaign:
    id: int
    name: str
    state: CampaignState
    when: int  # Unix seconds
    list_id: int
    domain: int
    event_callback: str | None = None


@dataclass(frozen=True)
class PlatformList:
    id: int
    name: str
    size: int


@dataclass(frozen=True)
class PlatformTemplate:
    id: int
    name: str
    type: ChannelType
    updated: int  # Unix seconds
    body: str | None = None  # only from get_template


@dataclass(frozen=True)
class PlatformDomain:
    id: int
    name: str
    bouncing: bool


@dataclass(frozen=True)
class CallbackBatch:
    """One event callback: one event, one moment, many addresses of one kind."""

    event: MessageEvent
    when: int  # Unix seconds
    channel_type: ChannelType  # email[] or telephone[]
    addresses: tuple[str, ...]
    query: Mapping[str, str] = field(default_factory=dict)


class Platform(Protocol):
    """What the pipeline needs from the execution platform."""

    async def create_list(self, name: str) -> int:
        """Create a contact list; ``PlatformOutcomeUnknown`` when the answer was lost
        after the request may have reached the platform (never retried: see the client)."""
        ...

    async def get_list(self, list_id: int) -> PlatformList: ...

    async def delete_list(self, list_id: int) -> None: ...

    async def add_contacts(self, list_id: int, contacts: Sequence[Contact]) -> ImportResult:
        """Add contacts, chunked under the platform's per-call limit; rejected rows are
        reported with their index in ``contacts``, never lost."""
        ...

    async def create_campaign(self, name: str, list_id: int, when: datetime,
                              event_callback: str) -> PlatformCampaign:
        """Create a DRAFT campaign. ``when`` is an aware UTC datetime. Like ``create_list``,
        never retried once the request may have reached the platform."""
        ...

    async def attach_payload(self, campaign_id: int, channel_type: ChannelType,
                             template_id: int) -> None: ...

    async def move_campaign(self, campaign_id: int, target: CampaignState,
                            current: CampaignState | None = None) -> PlatformCampaign:
        """Move to ``target``; refuses locally (``StateMoveRefused``) a move that the state
        machine forbids from ``current`` when it is given."""
        ...

    async def get_campaign(self, campaign_id: int) -> PlatformCampaign: ...

    async def delete_campaign(self, campaign_id: int) -> None: ...

    async def list_templates(self, channel_type: ChannelType | None = None
                             ) -> list[PlatformTemplate]: ...

    async def get_template(self, template_id: int) -> PlatformTemplate: ...

    async def list_domains(self) -> list[PlatformDomain]: ...

    async def aclose(self) -> None: ...
