"""The REST API's limits: requests per tenant (429 with Retry-After) and request body size (413).

Why: one tenant's script in a loop must not starve the others, and a body of megabytes must not be
read into memory before it is refused. The rate is a token bucket per tenant (``per_minute`` tokens
refilled a minute, ``burst`` at most at once), kept in the API process: several API processes each
allow their own rate (documented in docs/security.md). The body limit is ASGI middleware: a declared
``Content-Length`` above the limit is answered before the body is read, and a streamed body is cut off
as soon as it passes the limit.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RateLimited(Exception):
    """A tenant used up its requests for now; ``retry_after_s`` says when the next one is allowed."""

    def __init__(self, tenant: str, per_minute: int, retry_after_s: float):
        self.tenant = tenant
        self.retry_after_s = retry_after_s
        super().__init__(
            f"tenant {tenant!r} reached its limit of {per_minute} requests a minute; "
            f"retry after {math.ceil(retry_after_s)} s"
        )

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, at least 1, as HTTP's Retry-After takes them."""
        return str(max(1, math.ceil(self.retry_after_s)))


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TenantRateLimiter:
    """A token bucket per tenant; thread-safe (the API checks keys in its thread pool)."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic):
        if per_minute < 0 or burst < 1:
            raise ValueError(f"rate limit needs per_minute >= 0 and burst >= 1, got {per_minute}, {burst}")
        self.per_minute = per_minute
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def check(self, tenant: str) -> None:
        """Take one request from the tenant's bucket; raises RateLimited when it is empty."""
        if not self.enabled:
            return
        rate_per_s = self.per_minute / 60.0
        with self._lock:
            now = self._clock()
            bucket = self._buckets.setdefault(tenant, _Bucket(float(self.burst), now))
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * rate_per_s)
            bucket.updated = now
            if bucket.tokens < 1.0:
                raise RateLimited(tenant, self.per_minute, (1.0 - bucket.tokens) / rate_per_s)
            bucket.tokens -= 1.0


class BodyTooLarge(Exception):
    """A streamed request body passed the limit while it was read (raised into the app's body read)."""


class BodySizeLimit:
    """Answers 413 for a request body above ``max_bytes`` (pure ASGI: nothing else is buffered)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, f"{int(declared)} bytes declared")
            return
        received = 0
        too_large = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def answering_send(message: Message) -> None:
            # FastAPI turns an error while it reads the body into its own 400; the caller gets the 413.
            if not too_large:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._refuse(send, f"more than {self.max_bytes} bytes streamed")

        try:
            await self.app(scope, counting_receive, answering_send)
        except BodyTooLarge:
            await self._refuse(send, f"more than {self.max_bytes} bytes streamed")

    async def _refuse(self, send: Send, what: str) -> None:
        detail = (
            f"request body too large: {what}; the limit is {self.max_bytes} bytes (ADFAME_API_MAX_BODY_BYTES)"
        )
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
