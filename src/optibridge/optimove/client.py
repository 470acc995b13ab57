"""Async client of the Optimove REST API calls an execution partner uses (optimove-api.md).

Every request first takes a slot from the tenant's shared sliding-window limiter, so that all
calls of one API key stay under Optimove's limit together. Idempotent calls are retried with
exponential backoff; UpdateCampaignInteractions is never retried, because Optimove adds up
repeated calls (seed 000) and a blind retry would double-count a report batch.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any, NoReturn, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from optibridge import observe
from optibridge.config import TenantConfig
from optibridge.optimove.errors import (
    BatchTooLarge,
    EmptyBatch,
    OptimoveAuthError,
    OptimoveError,
    OptimoveNotReached,
    OptimoveOutcomeUnknown,
    OptimoveRateLimited,
    OptimoveRequestRejected,
    OptimoveServerError,
    OptimoveUnavailable,
    OptimoveUnexpectedResponse,
    UnknownShape,
)
from optibridge.optimove.models import (
    MAX_ATTRIBUTE_CUSTOMERS,
    MAX_ATTRIBUTES_PER_CUSTOMER,
    MAX_INTERACTION_CUSTOMERS,
    MAX_METRICS_PER_CALL,
    MAX_PREFERENCE_CUSTOMERS,
    MAX_TEMPLATES_PER_CALL,
    CampaignInteractions,
    CampaignMetric,
    ChannelInteraction,
    ChannelTemplate,
    CustomerAttributesUpdate,
    CustomerSendDetail,
    EventListener,
    ExecutionChannel,
    SendDetailsPage,
)
from optibridge.optimove.pages import UnreadablePage, decode_send_details
from optibridge.ratelimit import Priority, SlidingWindowLimiter, limiter_for
from optibridge.retry import (
    Lost,
    Resend,
    RetryPolicy,
    lost,
    outcome_unknown,
    parse_retry_after,
    proxy_page,
)

_M = TypeVar("_M", bound=BaseModel)
_R = TypeVar("_R", bound=Sized)  # a decoded page: its length is its row count
# What turns an audience page's body into rows: (body, attributes asked for, delimiter).
PageDecoder = Callable[[bytes, int, str], Awaitable[_R]]

DEFAULT_RETRY = RetryPolicy()  # frozen, so one shared default is safe
# Audience pages on their way while one is stored: one page's round trip (about 0.25 s for
# 10,000 rows) is longer than the limit's 0.2 s a call, so one page ahead was not enough.
PAGES_AHEAD = 2


@dataclass(frozen=True)
class _Call:
    """One Optimove Function: where it lives and how it may be retried."""

    function: str
    category: str
    method: str = "GET"
    priority: Priority = Priority.NORMAL
    resend: Resend = Resend.ALWAYS
    path: str | None = None  # where it lives, when not at {category}/{function}


_REGISTER = _Call("RegisterEventListener", "general", "POST")
_UNREGISTER = _Call("UnregisterEventListener", "general", "POST")
_LISTENERS = _Call("GetRegisteredEventListeners", "general")
_SEND_DETAILS = _Call("GetCustomerSendDetailsByChannel", "customers", priority=Priority.PULL)
_ADD_TEMPLATES = _Call("AddChannelTemplates", "integrations", "POST")
_DELETE_TEMPLATES = _Call("DeleteChannelTemplates", "integrations", "POST")
_TEMPLATES = _Call("GetChannelTemplates", "integrations")
_METRICS = _Call("UpdateCampaignMetrics", "integrations", "POST", Priority.REPORT)
# Optimove adds up repeated calls (seed 000): never tried twice, a lost answer is read back.
_INTERACTIONS = _Call("UpdateCampaignInteractions", "integrations", "POST", Priority.REPORT,
                      Resend.NEVER)
_CHANNEL_INTERACTIONS = _Call("GetCustomerChannelInteractions", "customers",
                              priority=Priority.READBACK)
_PREFERENCE = _Call("SetCustomerChannelPreference", "integrations", "POST")
_ADD_ATTRIBUTE = _Call("AddCustomerAttribute", "customers", "POST")
_UPDATE_ATTRIBUTES = _Call("UpdateCustomerAttributes", "customers", "POST")
_CHANNELS = _Call("GetExecutionChannels", "actions")




def _inline(decode: Callable[[bytes, int, str], _R]) -> PageDecoder[_R]:
    """A decoder run on the event loop, for callers that decode nothing heavy."""
    async def decoded(body: bytes, count: int, delimiter: str) -> _R:
        return decode(body, count, delimiter)
    return decoded


def _check_size(call: _Call, what: str, size: int, limit: int) -> None:
    if size > limit:
        raise BatchTooLarge(call.function, f"{size} {what} in one call, the limit is {limit}")


def _body_text(response: httpx.Response) -> str:
    return response.text[:300]


class OptimoveClient:
    """One tenant's connection to Optimove (one API key, one shared limiter)."""

    def __init__(self, base_url: str, api_key: str, *, path_prefix: str = "/current",
                 limiter: SlidingWindowLimiter | None = None,
                 retry: RetryPolicy = DEFAULT_RETRY, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None,
                 readback: tuple[str, str] | None = None) -> None:
        self._prefix = base_url.rstrip("/") + ("/" + path_prefix.strip("/")
                                               if path_prefix.strip("/") else "")
        self._limiter = limiter if limiter is not None else limiter_for(api_key, 50, 10.0)
        self._retry = retry
        # The read-back call's name and path are settings (tenants.NAME.readback).
        self._readback = _CHANNEL_INTERACTIONS if readback is None else _Call(
            readback[0], "customers", priority=Priority.READBACK, path=readback[1])
        self._http = httpx.AsyncClient(
            headers={"X-API-KEY": api_key, "Accept": "application/json",
                     "Content-Type": "application/json"},
            timeout=timeout, transport=transport)

    @classmethod
    def from_tenant(cls, tenant: TenantConfig) -> OptimoveClient:
        key = tenant.key()
        limit = tenant.rate_limit
        return cls(tenant.optimove_url, key, path_prefix=tenant.path_prefix,
                   limiter=limiter_for(key, limit.requests, limit.per_seconds),
                   readback=tenant.readback.call())

    @property
    def readback_function(self) -> str:
        return self._readback.function

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- event listeners

    async def register_event_listener(self, event_type_id: int, listener_url: str,
                                      channel_id: int | None = None) -> None:
        # Sent plain: the old docs' sample URL-encoded it, the sandbox accepts both forms.
        body: dict[str, Any] = {"EventTypeID": event_type_id, "ListenerURL": listener_url}
        if channel_id is not None:
            body["ChannelID"] = channel_id
        await self._void(_REGISTER, body=body)

    async def unregister_event_listener(self, event_type_id: int,
                                        channel_id: int | None = None) -> None:
        body: dict[str, Any] = {"EventTypeID": event_type_id}
        if channel_id is not None:
            body["ChannelID"] = channel_id
        await self._void(_UNREGISTER, body=body)

    async def get_registered_event_listeners(self) -> list[EventListener]:
        return await self._list(_LISTENERS, EventListener)

    # ------------------------------------------------------------------ audience pull

    async def get_customer_send_details(
            self, campaign_id: int, channel_id: int, *, attributes: Sequence[str] = (),
            delimiter: str = ";", top: int = 10_000, skip: int = 0
    ) -> Sequence[CustomerSendDetail]:
        """One page of a campaign's audience on one channel (seed 002, flow 4)."""
        body = await self._send_details_body(campaign_id, channel_id, attributes, delimiter,
                                             top, skip)
        return await self._decoded(_inline(decode_send_details), body, len(attributes),
                                   delimiter)

    async def iter_customer_send_details(
            self, campaign_id: int, channel_id: int, *, attributes: Sequence[str] = (),
            delimiter: str = ";", page_size: int = 10_000, start_skip: int = 0,
            ahead: int = PAGES_AHEAD,
    ) -> AsyncIterator[SendDetailsPage]:
        """Every non-empty page from ``start_skip`` on, stopping after a short page."""
        pages = self.iter_send_details_pages(
            campaign_id, channel_id, _inline(decode_send_details), attributes=attributes,
            delimiter=delimiter, page_size=page_size, start_skip=start_skip, ahead=ahead)
        async for skip, rows in pages:
            yield SendDetailsPage(skip=skip, rows=rows)

    async def iter_send_details_pages(
            self, campaign_id: int, channel_id: int, decode: PageDecoder[_R], *,
            attributes: Sequence[str] = (), delimiter: str = ";", page_size: int = 10_000,
            start_skip: int = 0, ahead: int = PAGES_AHEAD,
    ) -> AsyncIterator[tuple[int, _R]]:
        """Every non-empty page from ``start_skip`` on as (skip, what ``decode`` made of
        its body, ``decode(body, len(attributes), delimiter)``), stopping after a short page.

        Once a first page came back full, ``ahead`` pages are on their way (and being
        decoded) while the caller stores one, so the pull runs at the rate limit rather than
        at a page's round trip plus our own storing time. An audience of one page costs one
        call; a longer one at most ``ahead - 1`` calls more than pages one at a time would
        (pages past the end, asked for before the short page showed where the end is).
        """
        async def page(skip: int) -> _R:
            body = await self._send_details_body(campaign_id, channel_id, attributes,
                                                 delimiter, page_size, skip)
            return await self._decoded(decode, body, len(attributes), delimiter)

        def fetch(skip: int) -> asyncio.Task[_R]:
            return asyncio.create_task(page(skip))

        skip, pending = start_skip, deque([fetch(start_skip)])
        try:
            while True:
                rows = await pending.popleft()
                while len(rows) == page_size and len(pending) < max(1, ahead):
                    pending.append(fetch(skip + (len(pending) + 1) * page_size))
                if rows:
                    yield skip, rows
                if len(rows) < page_size:
                    return
                skip += len(rows)
        finally:
            for task in pending:
                if not task.done():
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # retrieved: a page past the stop is not news

    async def _send_details_body(self, campaign_id: int, channel_id: int,
                                 attributes: Sequence[str], delimiter: str, top: int,
                                 skip: int) -> bytes:
        if top < 1 or skip < 0:
            raise ValueError("top must be >= 1 and skip >= 0")
        params: dict[str, Any] = {"CampaignID": campaign_id, "ChannelID": channel_id,
                                  "$top": top, "$skip": skip}
        if attributes:
            if any(delimiter in name or not name for name in attributes):
                raise ValueError(f"attribute names must be non-empty and free of {delimiter!r}")
            params["CustomerAttributes"] = delimiter.join(attributes)
            params["CustomerAttributesDelimiter"] = delimiter
        response = await self._request(_SEND_DETAILS, params, None)
        return response.content

    async def _decoded(self, decode: PageDecoder[_R], body: bytes, count: int,
                       delimiter: str) -> _R:
        try:
            return await decode(body, count, delimiter)
        except UnreadablePage as problem:
            self._unexpected(_SEND_DETAILS, str(problem))

    # ---------------------------------------------------------------------- templates

    async def add_channel_templates(self, channel_id: int,
                                    templates: Sequence[ChannelTemplate]) -> None:
        _check_size(_ADD_TEMPLATES, "templates", len(templates), MAX_TEMPLATES_PER_CALL)
        if not templates:
            return
        body = [t.model_dump(by_alias=True, mode="json") for t in templates]
        await self._void(_ADD_TEMPLATES, params={"ChannelID": channel_id}, body=body)

    async def delete_channel_templates(self, channel_id: int,
                                       template_ids: Sequence[int]) -> None:
        _check_size(_DELETE_TEMPLATES, "templates", len(template_ids), MAX_TEMPLATES_PER_CALL)
        if not template_ids:
            return
        body = [{"ChannelID": channel_id, "TemplateID": tid} for tid in template_ids]
        await self._void(_DELETE_TEMPLATES, body=body)

    async def get_channel_templates(self, channel_id: int) -> list[ChannelTemplate]:
        return await self._list(_TEMPLATES, ChannelTemplate, params={"ChannelID": channel_id})

    # ---------------------------------------------------------------------- reporting

    async def update_campaign_metrics(self, metrics: Sequence[CampaignMetric]) -> None:
        """Send running totals (re-sending a total is safe, so this call is retried)."""
        _check_size(_METRICS, "metrics", len(metrics), MAX_METRICS_PER_CALL)
        if not metrics:
            return
        body = [m.model_dump(by_alias=True, mode="json") for m in metrics]
        await self._void(_METRICS, body=body)

    async def update_campaign_interactions(self, batch: CampaignInteractions) -> None:
        """Report one batch exactly once: raises ``OptimoveOutcomeUnknown`` when it may have
        landed, ``OptimoveRateLimited``/``OptimoveUnavailable`` when it surely did not."""
        size = len(batch.customer_ids)
        if size == 0:
            raise EmptyBatch(_INTERACTIONS.function, "the report batch has no CustomerIDs")
        _check_size(_INTERACTIONS, "CustomerIDs", size, MAX_INTERACTION_CUSTOMERS)
        body = batch.model_dump(by_alias=True, mode="json", exclude_none=True)
        await self._void(_INTERACTIONS, body=body)

    async def get_customer_channel_interactions(
            self, customer_id: str, start: date, end: date, channel_id: int | None = None,
    ) -> list[ChannelInteraction]:
        """What Optimove holds for one customer (seed 001): reads back an in-doubt batch."""
        params: dict[str, Any] = {"CustomerID": customer_id, "StartDate": start.isoformat(),
                                  "EndDate": end.isoformat()}
        if channel_id is not None:
            params["ChannelID"] = channel_id
        return await self._list(self._readback, ChannelInteraction, params=params)

    # -------------------------------------------------------------------- subscriptions

    async def set_customer_channel_preference(
            self, channel_id: int, customer_ids: Sequence[str], communication_mode: int,
            app_id: str | None = None) -> None:
        _check_size(_PREFERENCE, "CustomerIDs", len(customer_ids), MAX_PREFERENCE_CUSTOMERS)
        if not customer_ids:
            return
        body: dict[str, Any] = {"ChannelID": channel_id, "CustomerIDs": list(customer_ids),
                                "CommunicationMode": communication_mode}
        if app_id is not None:
            body["AppID"] = app_id
        await self._void(_PREFERENCE, body=body)

    async def add_customer_attribute(self, name: str, type: str,
                                     default_value: str | None = None,
                                     callback_url: str | None = None) -> None:
        body: dict[str, Any] = {"Name": name, "Type": type}
        if default_value is not None:
            body["DefaultValue"] = default_value
        if callback_url is not None:
            body["CallbackURL"] = callback_url
        await self._void(_ADD_ATTRIBUTE, body=body)

    async def update_customer_attributes(
            self, updates: Sequence[CustomerAttributesUpdate], callback_url: str | None = None,
            *, max_customers: int = 1_000) -> None:
        if not 1 <= max_customers <= MAX_ATTRIBUTE_CUSTOMERS:
            raise ValueError(f"max_customers must be 1..{MAX_ATTRIBUTE_CUSTOMERS}")
        _check_size(_UPDATE_ATTRIBUTES, "customers", len(updates), max_customers)
        for update in updates:
            _check_size(_UPDATE_ATTRIBUTES, f"attributes for customer {update.customer_id}",
                        len(update.attributes), MAX_ATTRIBUTES_PER_CUSTOMER)
        if not updates:
            return
        body: dict[str, Any] = {"CustomerNewAttributesValuesList": [
            u.model_dump(by_alias=True, mode="json") for u in updates]}
        if callback_url is not None:
            body["CallbackURL"] = callback_url
        await self._void(_UPDATE_ATTRIBUTES, body=body)

    async def get_execution_channels(self) -> list[ExecutionChannel]:
        return await self._list(_CHANNELS, ExecutionChannel)

    # ---------------------------------------------------------------------- transport

    async def _void(self, call: _Call, *, params: Mapping[str, Any] | None = None,
                    body: Any = None) -> None:
        """A call that answers 200 with no payload (or ``{"ResponseCode":200}``)."""
        response = await self._request(call, params, body)
        content = response.content.strip()
        if not content:
            return
        parsed = self._json(call, response)
        if parsed is None or parsed == {} or parsed is True:
            return
        if isinstance(parsed, Mapping) and parsed.get("ResponseCode") in (200, "200"):
            return
        # [GO] treats a bare JSON string on a 200 as an error: we do not know what happened.
        self._unexpected(call, f"answered 200 with {_body_text(response)!r}")

    async def _list(self, call: _Call, model: type[_M], *,
                    params: Mapping[str, Any] | None = None) -> list[_M]:
        """A call that answers a JSON array, each row validated as ``model``."""
        response = await self._request(call, params, None)
        # An empty body is an error, not "no rows": it cannot be told from a cut-off answer.
        parsed = self._json(call, response)
        if not isinstance(parsed, list):
            self._unexpected(call, f"expected a JSON array, got {_body_text(response)!r}")
        try:
            return [model.model_validate(row) for row in parsed]
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = f"a row does not fit {model.__name__}: {where}: {first['msg']}"
            if call is self._readback:  # kept whole: the operator needs to see the shape
                raise UnknownShape(call.function, message, response.text) from None
            self._unexpected(call, message)

    def _json(self, call: _Call, response: httpx.Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            self._unexpected(call, f"answered {response.status_code} with a body that is not "
                                   f"JSON: {_body_text(response)!r}")

    def _unexpected(self, call: _Call, message: str) -> NoReturn:
        if call.resend is not Resend.ALWAYS:  # a 2xx: it was applied, or it may have been
            raise OptimoveOutcomeUnknown(call.function, message, 200)
        raise OptimoveUnexpectedResponse(call.function, message, 200)

    async def _request(self, call: _Call, params: Mapping[str, Any] | None,
                       body: Any) -> httpx.Response:
        url = f"{self._prefix}/{call.path or f'{call.category}/{call.function}'}"
        content = None if body is None else json.dumps(body, separators=(",", ":"))

        async def attempt(number: int) -> httpx.Response:
            async with self._limiter.slot(call.priority):
                return await self._attempt(call, url, params, content, number > 1)

        return await self._retry.run(call.resend, attempt)

    async def _attempt(self, call: _Call, url: str, params: Mapping[str, Any] | None,
                       content: str | None, retried: bool = False) -> httpx.Response:
        self._limiter.check()  # the last moment before the call goes out
        try:
            response = await self._http.request(call.method, url, params=params,
                                                content=content)
        except httpx.TransportError as error:
            observe.api_call("optimove", call.function, "error", retried)
            raise _transport_failure(call, error) from None
        status = response.status_code
        observe.api_call("optimove", call.function, status, retried)
        if 200 <= status < 300:
            return response
        failure = _failure(call, response)
        if outcome_unknown(failure, call.resend):
            raise OptimoveOutcomeUnknown(
                call.function, f"answered {status}, may or may not have been applied: "
                               f"{_body_text(response)}", status)
        raise failure


def _failure(call: _Call, response: httpx.Response) -> OptimoveError:
    """What an error answer says, in Optimove's words (optimove-api.md)."""
    status = response.status_code
    if status == 429:
        # Real Optimove documents no Retry-After; honour it when a server sends one.
        return OptimoveRateLimited(
            call.function, f"rate limited (429): {_body_text(response)}", status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")))
    if status >= 500:
        return OptimoveServerError(call.function, f"server error {status}: "
                                                  f"{_body_text(response)}", status)
    if status in (401, 403):
        return OptimoveAuthError(call.function, status, response.text)
    if status == 400 and not proxy_page(response):
        return OptimoveRequestRejected(call.function, status, response.text)
    failure = OptimoveNotReached(call.function, status, response.text)
    failure.transient = status == 408  # a proxy gave up waiting for our request
    return failure


def _transport_failure(call: _Call, error: httpx.TransportError) -> OptimoveError:
    what = f"{type(error).__name__}: {error}"[:300]
    how = lost(error)
    if how is Lost.BAD_URL:
        return OptimoveUnavailable(call.function, f"bad URL ({what})")
    if how is Lost.NO_CONNECTION:
        return OptimoveUnavailable(call.function, f"no connection ({what})", transient=True)
    if call.resend is not Resend.ALWAYS:
        return OptimoveOutcomeUnknown(
            call.function, f"sent, then no complete answer ({what}); it may or may not "
                           "have been applied")
    return OptimoveOutcomeUnknown(call.function, f"no complete answer ({what})")
