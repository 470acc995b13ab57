"""The one adapter that knows the execution platform's HTTP contract.

See /work/shared/reference/platform-api.md: section 1 (seed 003) is binding, section 2 is our
assumption. A real vendor's differences should change this module only.

Idempotency of retries (the policy both clients share, ``optibridge.retry``: 429, 5xx, 408
and connection errors are retried with backoff):

- GET, PUT and DELETE are idempotent. A retried DELETE that finds the object gone (404) counts
  as done: the lost first attempt deleted it. A retried state move answered 409 is checked
  with a GET: if the campaign already is in (or beyond) the target state, the move landed.
- ``POST /list/<list>/contacts`` is idempotent: adding an address already in the list only
  updates its fields.
- ``POST /campaign`` and ``POST /list`` are NOT idempotent, and the contract has no
  idempotency key, client reference or listing of campaigns and lists: a retry after a lost
  answer would make a second object and leave the first one behind, unknown. So they are
  retried only when the request cannot have reached the platform (429, connection never
  made); otherwise they raise ``PlatformOutcomeUnknown``. The pipeline records each create
  before it is made (``pipeline/leftovers.py``) and finds what a lost answer left behind.
- ``POST /campaign/<campaign>/payload`` is NOT retried once the request may have reached the
  platform (5xx, timeout, dropped connection): a duplicate payload would send every message
  twice. It raises ``PlatformOutcomeUnknown``; the caller deletes the DRAFT and starts over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import orjson

from optibridge import observe
from optibridge.config import PlatformConfig
from optibridge.domain import ChannelType
from optibridge.platform.api import (
    ALLOWED_MOVES,
    CampaignState,
    Contact,
    ImportResult,
    Platform,
    PlatformCampaign,
    PlatformDomain,
    PlatformList,
    PlatformTemplate,
    RejectedContact,
)
from optibridge.platform.errors import (
    PlatformAuthError,
    PlatformError,
    PlatformNotFound,
    PlatformOutcomeUnknown,
    PlatformRateLimited,
    PlatformRequestRejected,
    PlatformServerError,
    PlatformUnavailable,
    PlatformUnexpectedAnswer,
    StateMoveRefused,
)
from optibridge.ratelimit import SlidingWindowLimiter, limiter_for
from optibridge.retry import (
    Lost,
    Resend,
    RetryPolicy,
    lost,
    outcome_unknown,
    parse_retry_after,
    proxy_page,
)

IMPORT_LIMIT = 10_000  # contacts per POST /list/<list>/contacts (section 2)
PAGE_LIMIT = 1_000  # max `limit` of listing endpoints (section 2)
DEFAULT_RETRY = RetryPolicy()  # frozen: safe to share
_BEYOND_READY = frozenset({CampaignState.SENDING, CampaignState.DONE, CampaignState.ERROR})

Form = list[tuple[str, str]]


class PlatformClient:
    """Async client of the platform; satisfies ``optibridge.platform.api.Platform``."""

    def __init__(self, base_url: str, api_key: str, *, bounce_domain: int | None = None,
                 limiter: SlidingWindowLimiter | None = None, retry: RetryPolicy = DEFAULT_RETRY,
                 timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None,
                 import_chunk: int = IMPORT_LIMIT) -> None:
        """``bounce_domain`` is the Domain ID new campaigns use; None looks up the first
        bouncing domain once. ``import_chunk`` is capped at the platform's 10,000."""
        if not 1 <= import_chunk <= IMPORT_LIMIT:
            raise ValueError(f"import_chunk must be 1..{IMPORT_LIMIT}")
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"})
        self._limiter = limiter
        self._retry = retry
        self._bounce_domain = bounce_domain
        self.import_chunk = import_chunk

    @classmethod
    def from_config(cls, platform: PlatformConfig) -> PlatformClient:
        key = platform.key()
        limiter = limiter_for(key, platform.rate_limit.requests, platform.rate_limit.per_seconds)
        return cls(platform.base_url, key, bounce_domain=platform.bounce_domain, limiter=limiter)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PlatformClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- transport -------------------------------------------------------------------------

    async def _request(self, call: str, method: str, path: str, *, form: Form | None = None,
                       json: Any = None, params: Mapping[str, int] | None = None,
                       resend: Resend = Resend.ALWAYS) -> Any:
        """One call with rate limiting and retries (``optibridge.retry``); the decoded JSON
        answer. ``Resend.UNSENT`` for calls that must not run twice."""
        name = f"{method} {observe.path_template(path)}"

        async def attempt(number: int) -> Any:
            if self._limiter is not None:
                await self._limiter.acquire()
            try:
                response = await self._http.request(method, path, params=params,
                                                    **_form_body(form), **_json_body(json))
            except httpx.TransportError as error:
                observe.api_call("platform", name, "error", number > 1)
                raise _transport_failure(call, error, resend) from None
            observe.api_call("platform", name, response.status_code, number > 1)
            if response.is_success:
                return _json(call, response)
            failure = _failure(call, response, retried=number > 1)
            if outcome_unknown(failure, resend):
                raise PlatformOutcomeUnknown(call, failure.message, failure.status)
            raise failure

        return await self._retry.run(resend, attempt)

    # -- lists and contacts ----------------------------------------------------------------

    async def create_list(self, name: str) -> int:
        data = await self._request("create list", "POST", "/list", form=[("name", name)],
                                   resend=Resend.UNSENT)
        return _int(data, "id", "create list")

    async def get_list(self, list_id: int) -> PlatformList:
        call = f"get list {list_id}"
        data = await self._request(call, "GET", f"/list/{list_id}")
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str):
            raise PlatformUnexpectedAnswer(call, "answer has no string 'name'")
        return PlatformList(id=_int(data, "id", call), name=name, size=_int(data, "size", call))

    async def delete_list(self, list_id: int) -> None:
        await self._delete("delete list", f"/list/{list_id}")

    async def add_contacts(self, list_id: int, contacts: Sequence[Contact]) -> ImportResult:
        """Add contacts in chunks of ``import_chunk``; rejected rows keep their index in
        ``contacts``. If a chunk fails the error propagates; calling again with the same
        contacts is safe (re-adding an address only updates its fields)."""
        added = 0
        rejected: list[RejectedContact] = []
        for start in range(0, len(contacts), self.import_chunk):
            chunk = contacts[start:start + self.import_chunk]
            call = f"add contacts to list {list_id} (rows {start}..{start + len(chunk) - 1})"
            data = await self._request(call, "POST", f"/list/{list_id}/contacts",
                                       json={"contacts": [_contact_json(c) for c in chunk]})
            added += _int(data, "added", call)
            rejected.extend(_rejected(data, call, start, len(chunk)))
        return ImportResult(added=added, rejected=tuple(rejected))

    # -- campaigns -------------------------------------------------------------------------

    async def create_campaign(self, name: str, list_id: int, when: datetime,
                              event_callback: str) -> PlatformCampaign:
        """Create a DRAFT campaign (see the module docstring on retried POSTs)."""
        if when.tzinfo is None:
            raise ValueError("create_campaign: `when` must be an aware datetime")
        domain = await self._domain()
        form = [("name", name), ("domain", str(domain)), ("list", str(list_id)),
                ("state", CampaignState.DRAFT.value), ("when", str(int(when.timestamp()))),
                ("event_callback", event_callback)]
        data = await self._request("create campaign", "POST", "/campaign", form=form,
                                   resend=Resend.UNSENT)
        return _campaign(data, "create campaign")

    async def attach_payload(self, campaign_id: int, channel_type: ChannelType,
                             template_id: int) -> None:
        form = [("type", channel_type.value), ("template", str(template_id))]
        await self._request(f"attach {channel_type.value} payload to campaign {campaign_id}",
                            "POST", f"/campaign/{campaign_id}/payload", form=form,
                            resend=Resend.UNSENT)

    async def move_campaign(self, campaign_id: int, target: CampaignState,
                            current: CampaignState | None = None) -> PlatformCampaign:
        call = f"move campaign {campaign_id} to {target.value}"
        if current is not None and target not in ALLOWED_MOVES[current]:
            raise StateMoveRefused(call, f"not allowed from {current.value}")
        try:
            data = await self._request(call, "PUT", f"/campaign/{campaign_id}",
                                       form=[("state", target.value)])
        except StateMoveRefused as refused:
            if not refused.retried:
                raise
            # Our first attempt may have landed before its answer was lost.
            campaign = await self.get_campaign(campaign_id)
            if campaign.state == target or (target is CampaignState.READY
                                            and campaign.state in _BEYOND_READY):
                return campaign
            raise
        return _campaign(data, call)

    async def get_campaign(self, campaign_id: int) -> PlatformCampaign:
        call = f"get campaign {campaign_id}"
        return _campaign(await self._request(call, "GET", f"/campaign/{campaign_id}"), call)

    async def delete_campaign(self, campaign_id: int) -> None:
        await self._delete(f"delete campaign {campaign_id}", f"/campaign/{campaign_id}")

    async def _delete(self, call: str, path: str) -> None:
        try:
            await self._request(call, "DELETE", path)
        except PlatformNotFound as error:
            if not error.retried:
                raise  # a retried DELETE finding nothing: the lost first attempt deleted it

    # -- templates and domains -------------------------------------------------------------

    async def list_templates(self, channel_type: ChannelType | None = None
                             ) -> list[PlatformTemplate]:
        items = await self._all_pages("list templates", "/template")
        templates = [_template(item, "list templates") for item in items]
        return [t for t in templates if channel_type is None or t.type == channel_type]

    async def get_template(self, template_id: int) -> PlatformTemplate:
        call = f"get template {template_id}"
        return _template(await self._request(call, "GET", f"/template/{template_id}"), call)

    async def list_domains(self) -> list[PlatformDomain]:
        items = await self._all_pages("list domains", "/domain")
        try:
            return [PlatformDomain(id=int(i["id"]), name=str(i["name"]),
                                   bouncing=bool(i["bouncing"])) for i in items]
        except (KeyError, TypeError, ValueError) as error:
            raise PlatformUnexpectedAnswer("list domains",
                                           f"unexpected answer: {error!r}") from None

    async def _domain(self) -> int:
        if self._bounce_domain is None:
            bouncing = [d.id for d in await self.list_domains() if d.bouncing]
            if not bouncing:
                raise PlatformRequestRejected("create campaign", "no bouncing domain configured")
            self._bounce_domain = bouncing[0]
        return self._bounce_domain

    async def _all_pages(self, call: str, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = await self._request(call, "GET", path,
                                       params={"offset": len(items), "limit": PAGE_LIMIT})
            batch = page.get("items") if isinstance(page, dict) else None
            if not isinstance(batch, list) or not all(isinstance(i, dict) for i in batch):
                raise PlatformUnexpectedAnswer(call, "answer has no list of `items`")
            items.extend(batch)
            if not batch or len(items) >= _int(page, "total", call):
                return items


# -- decoding answers (module functions: pure, easy to test) ---------------------------------


def _form_body(form: Form | None) -> dict[str, Any]:
    """Form-encode ``form`` ourselves: repeated keys (``segments[]``) keep their order."""
    if form is None:
        return {}
    return {"content": urlencode(form).encode("ascii"),
            "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


def _json_body(data: Any) -> dict[str, Any]:
    """JSON-encode ``data`` with orjson: a contacts upload is 10,000 rows, and the standard
    library's encoder is most of the upload's cost on our side."""
    if data is None:
        return {}
    return {"content": orjson.dumps(data), "headers": {"Content-Type": "application/json"}}


def _json(call: str, response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise PlatformUnexpectedAnswer(call, f"answer {response.status_code} is not JSON",
                                  response.status_code) from None


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return str(data["error"])[:300]
    except ValueError:
        pass
    return response.text[:300] or "(empty body)"


def _failure(call: str, response: httpx.Response, *, retried: bool) -> PlatformError:
    status = response.status_code
    message = f"{status}: {_error_text(response)}"
    kinds: dict[int, type[PlatformError]] = {
        401: PlatformAuthError, 403: PlatformAuthError, 404: PlatformNotFound,
        408: PlatformUnavailable, 409: StateMoveRefused, 429: PlatformRateLimited}
    if status >= 500:
        kind: type[PlatformError] = PlatformServerError
    elif proxy_page(response) and status not in (401, 403, 429):
        kind = PlatformUnavailable  # a proxy's page, not the platform's JSON answer
    else:
        kind = kinds.get(status, PlatformRequestRejected)
    failure = kind(call, message, status, transient=status == 408,
                   retry_after=parse_retry_after(response.headers.get("Retry-After"))
                   if status == 429 else None)
    failure.retried = retried
    return failure


def _transport_failure(call: str, error: httpx.TransportError, resend: Resend
                       ) -> PlatformError:
    message = f"no answer ({type(error).__name__}: {error})"
    how = lost(error)
    if how is Lost.ANSWER:
        return PlatformOutcomeUnknown(call, message)
    return PlatformUnavailable(call, message, transient=how is Lost.NO_CONNECTION)


def _int(data: Any, key: str, call: str) -> int:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise PlatformUnexpectedAnswer(call, f"answer has no integer {key!r}")
    return value


def _contact_json(contact: Contact) -> dict[str, Any]:
    fields = contact.fields
    row: dict[str, Any] = {
        "fields": orjson.Fragment(fields) if isinstance(fields, str) else dict(fields)}
    if contact.email is not None:
        row["email"] = contact.email
    if contact.telephone is not None:
        row["telephone"] = contact.telephone
    return row


def _rejected(data: Any, call: str, start: int, size: int) -> list[RejectedContact]:
    """The chunk's rejected rows, re-indexed from the chunk to the caller's sequence."""
    rows = data.get("rejected", []) if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise PlatformUnexpectedAnswer(call, "answer has no list `rejected`")
    result = []
    for row in rows:
        index = _int(row, "index", call)
        if not 0 <= index < size:
            raise PlatformUnexpectedAnswer(call, f"rejected index {index} is outside the chunk")
        result.append(RejectedContact(index=start + index, error=str(row.get("error", ""))))
    return result


def _campaign(data: Any, call: str) -> PlatformCampaign:
    try:
        callback = data.get("event_callback")
        return PlatformCampaign(
            id=int(data["id"]), name=str(data["name"]), state=CampaignState(data["state"]),
            when=int(data["when"]), list_id=int(data["list"]), domain=int(data["domain"]),
            event_callback=str(callback) if callback else None)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise PlatformUnexpectedAnswer(call, f"unexpected campaign in answer: {error!r}") from None


def _template(data: Any, call: str) -> PlatformTemplate:
    try:
        body = data.get("body")
        return PlatformTemplate(id=int(data["id"]), name=str(data["name"]),
                                type=ChannelType(data["type"]), updated=int(data["updated"]),
                                body=str(body) if body is not None else None)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise PlatformUnexpectedAnswer(call, f"unexpected template in answer: {error!r}") from None


if TYPE_CHECKING:  # mypy proves that the client satisfies the pipeline's protocol
    _conforms: Platform = PlatformClient("http://platform.invalid", "key")
