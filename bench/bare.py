"""The baseline: a bare FastAPI JSON endpoint on the intake's path (parse the body, answer 202)."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/v1/webhooks/{source}", status_code=202)
async def receive(source: str, request: Request) -> JSONResponse:
    """Parse the JSON body and answer like the intake does."""
    body: Any = await request.json()
    return JSONResponse({"source": source, "fields": len(body)}, status_code=202)
