"""A bare endpoint of the service's web stack (Starlette on uvicorn, same options as
``optibridge serve``) that reads the body and answers 200: the ceiling of ``ingest-single``.

``python -m bench.bare PORT``
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def answer(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"bytes": len(body)})


app = Starlette(routes=[Route("/", answer, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
