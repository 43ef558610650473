"""The floor for an HTTP append: the stack Stafett is built on, doing nothing but the append.

A FastAPI application behind uvicorn, as Stafett's services run, with one route: it reads a
JSON body into a pydantic model (the fields of a log entry), publishes the body's bytes to
JetStream with nats-py and answers 201 with the stored sequence number. No token, no
consent decision, no encryption, no hash chain, no read model. ``bench/system.py`` starts
it beside the system and sends it the same requests as the log service: no service built
on this stack can append faster on the same machine.

    python bench/floor_service.py PORT NATS_URL
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import nats
import uvicorn
from fastapi import FastAPI, Path, Request
from nats.js import JetStreamContext
from pydantic import BaseModel, Field

from stafett_shared.eventstore import required_stream_config

STREAM = "FLOOR"
PREFIX = "floor.ev"


class Entry(BaseModel):
    kind: str = Field(max_length=32)
    text: str = Field(min_length=1, max_length=10_000)
    occurred_at: datetime


class Stored(BaseModel):
    seq: int


def create_app(nats_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await nats.connect(nats_url, name="bench-floor")
        js = nc.jetstream(timeout=10)
        await js.add_stream(required_stream_config(STREAM, PREFIX, 1))
        app.state.js = js
        try:
            yield
        finally:
            await nc.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/entries/{case_id}", status_code=201)
    async def append(
        case_id: Annotated[str, Path(max_length=26)], entry: Entry, request: Request
    ) -> Stored:
        js: JetStreamContext = request.app.state.js
        body: Any = entry.model_dump_json().encode()
        ack = await js.publish(f"{PREFIX}.{case_id}", body)
        return Stored(seq=ack.seq)

    return app


def main(argv: list[str]) -> int:
    port, nats_url = int(argv[1]), argv[2]
    uvicorn.run(
        create_app(nats_url),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
