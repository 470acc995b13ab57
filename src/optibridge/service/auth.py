"""Who may see ``/ui`` and ``/metrics``: the admin token, or only this machine without one.

The token comes as ``Authorization: Bearer TOKEN`` (Prometheus, curl) or, for a browser, once
as ``?token=TOKEN``: the answer then sets a cookie holding a digest of the token (never the
token itself) and redirects to the same page without it, so it leaves the address bar.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

COOKIE = "optibridge_admin"
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
Endpoint = Callable[[Request], Awaitable[Response]]


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"optibridge-ui-cookie", hashlib.sha256).hexdigest()


def _token(request: Request) -> SecretStr | None:
    token: SecretStr | None = request.app.state.service.config.server.admin_token
    return token


def is_local(request: Request) -> bool:
    """From this machine, and not relayed: a proxy on this machine would make every
    caller look local, so a forwarded request never counts as local."""
    relayed = any(name in request.headers for name in ("forwarded", "x-forwarded-for",
                                                        "x-real-ip"))
    return not relayed and request.client is not None and request.client.host in LOCAL_HOSTS


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def check(request: Request) -> Response | None:
    """None when the request may go on; else the answer to give instead."""
    token = _token(request)
    if token is None:
        if is_local(request):
            return None
        return JSONResponse({"error": "forbidden: no admin_token is configured, so only "
                                      "requests from this machine are served"}, status_code=403)
    secret = token.get_secret_value()
    if _same(_bearer(request), secret) or _same(request.cookies.get(COOKIE),
                                                cookie_value(secret)):
        return None
    if _same(request.query_params.get("token"), secret):
        return _remember(request, secret)
    return JSONResponse({"error": "unauthorized: send the admin token as a Bearer header, or "
                                  "open this page once with ?token=..."}, status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="optibridge"'})


def _remember(request: Request, secret: str) -> Response:
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    target = request.url.replace(query=urlencode(query))
    response = RedirectResponse(str(target), status_code=303)
    response.set_cookie(COOKIE, cookie_value(secret), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=12 * 3600)
    return response


def protected(endpoint: Endpoint) -> Endpoint:
    """Wrap an endpoint so that it answers only to the admin (see the module docstring)."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        refused = check(request)
        return refused if refused is not None else await endpoint(request)

    return guarded
