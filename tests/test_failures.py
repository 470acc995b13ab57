"""One error hierarchy and one retry and outcome policy for both clients (issue 17 item 3):
each kind of failure is classified once, about the item or recoverable, and both clients
retry, and call a failure "not applied" or "outcome unknown", by the same rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from optibridge import failures
from optibridge.failures import (
    NOT_APPLIED,
    AuthRefused,
    CallFailed,
    NotReached,
    OutcomeUnknown,
    RateLimited,
    RequestRefused,
    ServerFailed,
    UnexpectedAnswer,
    about_the_item,
)
from optibridge.optimove import errors as optimove_errors
from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.models import CampaignMetric, Metric
from optibridge.platform import errors as platform_errors
from optibridge.platform.client import PlatformClient
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.retry import NOT_SENT, Lost, Resend, RetryPolicy, lost, outcome_unknown

FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002)

# --- the kinds, and the one classification ---------------------------------------------

# kind -> (about the item, surely not applied for a call never sent twice)
KINDS: dict[type[CallFailed], tuple[bool, bool]] = {
    RequestRefused: (True, True),
    AuthRefused: (False, True),
    RateLimited: (False, True),
    ServerFailed: (False, False),
    NotReached: (False, True),
    OutcomeUnknown: (False, False),
    UnexpectedAnswer: (True, False),
}


@pytest.mark.parametrize("kind", list(KINDS), ids=[k.__name__ for k in KINDS])
def test_each_kind_is_classified_once(kind: type[CallFailed]) -> None:
    item, not_applied = KINDS[kind]
    error = kind("SomeCall", "what happened", 400)
    assert about_the_item(error) is item
    assert isinstance(error, NOT_APPLIED) is not_applied


def test_every_kind_is_in_the_table() -> None:
    kinds = {value for value in vars(failures).values() if isinstance(value, type)
             and issubclass(value, CallFailed) and value is not CallFailed}
    assert kinds == set(KINDS)


def _client_errors() -> list[type[CallFailed]]:
    found = []
    for module in (optimove_errors, platform_errors):
        found += [value for value in vars(module).values() if isinstance(value, type)
                  and issubclass(value, CallFailed) and value.__module__ == module.__name__
                  and not value.__name__.startswith("_")]
    return found


@pytest.mark.parametrize("error", _client_errors(), ids=lambda e: e.__name__)
def test_every_client_error_has_one_root_and_at_most_one_kind(error: type[CallFailed]) -> None:
    kinds = [kind for kind in KINDS if issubclass(error, kind)]
    roots = {optimove_errors.OptimoveError, platform_errors.PlatformError}
    assert len(kinds) == 1 or error in roots, (error, kinds)


# Each client's errors as the pipeline meets them: about the item only when the other side
# refused the request's own content (or a limit we check before sending refused it).
CLIENT_CASES: dict[str, tuple[BaseException, bool]] = {
    "optimove 400": (optimove_errors.OptimoveRequestRejected("C", 400, "{}"), True),
    "optimove batch too large": (optimove_errors.BatchTooLarge("C", "10001 > 10000"), True),
    "optimove empty batch": (optimove_errors.EmptyBatch("C", "no customers"), True),
    "optimove 401": (optimove_errors.OptimoveAuthError("C", 401, ""), False),
    "optimove 403": (optimove_errors.OptimoveAuthError("C", 403, ""), False),
    "optimove proxy 404": (optimove_errors.OptimoveNotReached("C", 404, "<html>"), False),
    "optimove proxy 408": (optimove_errors.OptimoveNotReached("C", 408, "<html>"), False),
    "optimove proxy 413": (optimove_errors.OptimoveNotReached("C", 413, "<html>"), False),
    "optimove 429": (optimove_errors.OptimoveRateLimited("C", "429", 429), False),
    "optimove 503": (optimove_errors.OptimoveServerError("C", "503", 503), False),
    "optimove no connection": (optimove_errors.OptimoveUnavailable("C", "refused"), False),
    "optimove lost answer": (optimove_errors.OptimoveOutcomeUnknown("C", "timeout"), False),
    "optimove unreadable 200": (optimove_errors.OptimoveUnexpectedResponse("C", "x"), True),
    "platform 400": (platform_errors.PlatformRequestRejected("c", "400: bad"), True),
    "platform 404": (platform_errors.PlatformNotFound("c", "404: no list"), True),
    "platform 409": (platform_errors.StateMoveRefused("c", "409: no"), True),
    "platform 401": (platform_errors.PlatformAuthError("c", "401: no"), False),
    "platform 429": (platform_errors.PlatformRateLimited("c", "429"), False),
    "platform 500": (platform_errors.PlatformServerError("c", "500"), False),
    "platform no connection": (platform_errors.PlatformUnavailable("c", "no answer"), False),
    "platform lost answer": (platform_errors.PlatformOutcomeUnknown("c", "no answer"), False),
    "platform unreadable 200": (platform_errors.PlatformUnexpectedAnswer("c", "x"), True),
    "our own bug": (KeyError("x"), True),
    "bad data": (ValueError("x"), True),
    "network": (ConnectionResetError(), False),
    "timeout": (TimeoutError(), False),
    "raw httpx": (httpx.ReadTimeout("x"), False),
}


@pytest.mark.parametrize("case", list(CLIENT_CASES), ids=list(CLIENT_CASES))
def test_the_pipeline_asks_one_question_of_every_error(case: str) -> None:
    error, item = CLIENT_CASES[case]
    assert about_the_item(error) is item


def test_a_database_outage_is_not_about_the_item() -> None:
    class OperationalError(Exception):  # the drivers' name; no driver imported here
        pass

    assert about_the_item(OperationalError("server closed the connection")) is False


# --- the shared policy ------------------------------------------------------------------

RETRIED: dict[str, tuple[CallFailed, set[Resend]]] = {
    "refused": (RequestRefused("c", "400"), set()),
    "auth": (AuthRefused("c", "401"), set()),
    "429": (RateLimited("c", "429"), {Resend.ALWAYS, Resend.UNSENT}),
    "5xx": (ServerFailed("c", "503"), {Resend.ALWAYS}),
    "no connection": (NotReached("c", "refused", transient=True),
                      {Resend.ALWAYS, Resend.UNSENT}),
    "proxy 404": (NotReached("c", "404"), set()),
    "lost answer": (OutcomeUnknown("c", "timeout"), {Resend.ALWAYS}),
    "unreadable": (UnexpectedAnswer("c", "x"), set()),
}


@pytest.mark.parametrize("case", list(RETRIED), ids=list(RETRIED))
def test_which_failures_are_retried_for_each_kind_of_call(case: str) -> None:
    failure, retried_for = RETRIED[case]
    assert {r for r in Resend if RetryPolicy.retries(failure, r)} == retried_for


def test_a_5xx_or_a_lost_answer_leaves_a_call_that_may_not_run_twice_in_doubt() -> None:
    for failure in (ServerFailed("c", "500"), OutcomeUnknown("c", "lost")):
        assert not outcome_unknown(failure, Resend.ALWAYS)
        assert outcome_unknown(failure, Resend.UNSENT) and outcome_unknown(failure, Resend.NEVER)
    assert not outcome_unknown(RateLimited("c", "429"), Resend.NEVER)


def test_one_definition_of_nothing_sent() -> None:
    request = httpx.Request("GET", "http://x")
    assert lost(httpx.UnsupportedProtocol("ftp", request=request)) is Lost.BAD_URL
    for error in (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
        assert issubclass(error, NOT_SENT)
        assert lost(error("x", request=request)) is Lost.NO_CONNECTION
    for sent in (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError,
                 httpx.ReadError):
        assert lost(sent("x", request=request)) is Lost.ANSWER


async def test_the_loop_stops_at_the_attempts_and_at_a_failure_it_does_not_retry() -> None:
    tries: list[int] = []

    def failing(failure: CallFailed) -> Callable[[int], Awaitable[None]]:
        async def attempt(number: int) -> None:
            tries.append(number)
            raise failure
        return attempt

    with pytest.raises(ServerFailed):
        await FAST.run(Resend.ALWAYS, failing(ServerFailed("c", "500")))
    assert tries == [1, 2, 3]
    tries.clear()
    with pytest.raises(ServerFailed):
        await FAST.run(Resend.UNSENT, failing(ServerFailed("c", "500")))
    assert tries == [1]
    tries.clear()
    with pytest.raises(RateLimited):
        await FAST.run(Resend.NEVER, failing(RateLimited("c", "429")))
    assert tries == [1]


# --- both clients follow it -------------------------------------------------------------

def _answering(status: int, body: bytes = b"{}", content_type: str = "application/json",
               calls: list[str] | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if calls is not None:
            calls.append(request.url.path)
        return httpx.Response(status, content=body, headers={"Content-Type": content_type})
    return httpx.MockTransport(handler)


def _platform(transport: httpx.AsyncBaseTransport) -> PlatformClient:
    return PlatformClient("http://p", "k", bounce_domain=1, retry=FAST, transport=transport)


def _optimove(transport: httpx.AsyncBaseTransport) -> OptimoveClient:
    return OptimoveClient("http://o", "k", limiter=SlidingWindowLimiter(1000, 1.0),
                          retry=FAST, transport=transport)


async def test_a_platform_403_is_an_auth_refusal_not_about_the_item() -> None:
    async with _platform(_answering(403, b'{"error":"forbidden"}')) as client:
        with pytest.raises(AuthRefused) as caught:
            await client.get_campaign(1)
    assert isinstance(caught.value, platform_errors.PlatformAuthError)
    assert not about_the_item(caught.value)


async def test_a_proxy_408_before_the_platform_is_retried_and_not_about_the_item() -> None:
    calls: list[str] = []
    async with _platform(_answering(408, b"<html>timeout</html>", "text/html",
                                    calls)) as client:
        with pytest.raises(NotReached) as caught:
            await client.get_campaign(1)
    assert len(calls) == FAST.attempts
    assert not about_the_item(caught.value)


async def test_a_proxy_page_404_is_not_a_platform_object_gone() -> None:
    async with _platform(_answering(404, b"<html>Not Found</html>", "text/html")) as client:
        with pytest.raises(NotReached) as caught:
            await client.get_campaign(1)
    assert not isinstance(caught.value, platform_errors.PlatformNotFound)


async def test_an_unreadable_platform_answer_is_its_own_kind() -> None:
    async with _platform(_answering(200, b'{"id": 1}')) as client:
        with pytest.raises(UnexpectedAnswer, match="unexpected campaign") as caught:
            await client.get_campaign(1)
    assert isinstance(caught.value, platform_errors.PlatformUnexpectedAnswer)
    assert not isinstance(caught.value, ServerFailed)


async def test_a_bad_url_is_not_retried_by_either_client() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.UnsupportedProtocol("no such scheme", request=request)

    async with _platform(httpx.MockTransport(handler)) as platform:
        with pytest.raises(NotReached, match=r"bad URL|no answer"):
            await platform.get_campaign(1)
    async with _optimove(httpx.MockTransport(handler)) as optimove:
        with pytest.raises(NotReached, match="bad URL"):
            await optimove.get_execution_channels()
    assert len(calls) == 2


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadTimeout],
                         ids=["no connection", "answer lost"])
async def test_both_clients_say_the_same_of_a_lost_connection(
        error: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("gone", request=request)

    kind = NotReached if error is httpx.ConnectError else OutcomeUnknown
    async with _platform(httpx.MockTransport(handler)) as platform:
        with pytest.raises(kind):
            await platform.get_campaign(1)  # idempotent
        with pytest.raises(kind):
            await platform.create_list("x")  # may not run twice
    async with _optimove(httpx.MockTransport(handler)) as optimove:
        with pytest.raises(kind):
            await optimove.update_campaign_metrics([CampaignMetric(
                channel_id=1, campaign_id=2, template_id=3, metric_id=Metric.SENT,
                metric_value=4)])
