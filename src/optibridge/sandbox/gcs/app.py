"""The emulator's HTTP face: the parts of the Cloud Storage JSON API that reading an object
uses (its resource, its media, with ``Range``), and GCS's error bodies."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from optibridge.sandbox.gcs.storage import GcsEmulator, KeyRefused, StoredObject, check_key

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def gcs_error(status: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message, "errors": [
        {"domain": "global", "reason": reason, "message": message}]}}, status_code=status)


def _not_found(bucket: str, name: str) -> JSONResponse:
    return gcs_error(404, "notFound", f"No such object: {bucket}/{name}")


def _headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


async def _chunks(path: Path, start: int, end: int, chunk: int, seconds: float
                  ) -> AsyncIterator[bytes]:
    pause = seconds / max(1, (end - start) // chunk + 1)
    with path.open("rb") as file:
        file.seek(start)
        left = end - start
        while left > 0:
            data = file.read(min(chunk, left))
            if not data:
                return
            left -= len(data)
            if pause:
                await asyncio.sleep(pause)
            yield data


def _media(storage: GcsEmulator, stored: StoredObject, request: Request,
           slow: float) -> Response:
    start, end, status = 0, stored.size, 200
    wanted = request.headers.get("range")
    if wanted:
        match = _RANGE.match(wanted.strip())
        if match is None or int(match.group(1)) >= max(1, stored.size):
            return Response(status_code=416, headers={"content-range": f"bytes */{stored.size}"})
        start = int(match.group(1))
        end = min(stored.size, int(match.group(2)) + 1) if match.group(2) else stored.size
        status = 206
    hashes = f"crc32c={stored.crc32c},md5={stored.md5}" if stored.crc32c else \
        f"md5={stored.md5}"
    headers = {"content-length": str(end - start), "x-goog-hash": hashes,
               "x-goog-generation": str(stored.generation),
               "x-goog-stored-content-length": str(stored.size)}
    if status == 206:
        headers["content-range"] = f"bytes {start}-{end - 1}/{stored.size}"
    return StreamingResponse(_chunks(stored.path, start, end, storage.chunk_size, slow),
                             status_code=status, headers=headers,
                             media_type="application/octet-stream")


def create_app(storage: GcsEmulator) -> Starlette:
    """The ASGI app serving ``storage`` (bind it to loopback: it checks no credentials)."""

    async def media(request: Request) -> Response:
        bucket, name = request.path_params["bucket"], request.path_params["name"]
        try:
            stored, slow = storage.open_media(bucket, name, _headers(request))
        except KeyRefused as refused:
            return gcs_error(400, refused.reason, refused.message)
        if stored is None:
            return _not_found(bucket, name)
        return _media(storage, stored, request, slow)

    async def resource(request: Request) -> Response:
        if request.query_params.get("alt") == "media":
            return await media(request)
        bucket, name = request.path_params["bucket"], request.path_params["name"]
        stored = storage.find(bucket, name)
        if stored is None:
            return _not_found(bucket, name)
        headers = _headers(request)
        keyed = "x-goog-encryption-key" in headers
        if keyed:
            try:
                check_key(stored, headers)
            except KeyRefused as refused:
                return gcs_error(400, refused.reason, refused.message)
        # GCS shows a CSEK object's hashes only to a request carrying its key.
        body: dict[str, Any] = storage.resource(bucket, name, stored,
                                                with_hashes=keyed or not stored.key_sha256)
        return JSONResponse(body)

    return Starlette(routes=[
        Route("/download/storage/v1/b/{bucket}/o/{name:path}", media, methods=["GET"]),
        Route("/storage/v1/b/{bucket}/o/{name:path}", resource, methods=["GET"]),
    ])
