"""How much the server takes on at once: at most ``limits.max_concurrent_requests``
requests in a worker (503 at once beyond it, with ``Retry-After``) and at most
``limits.request_timeout`` seconds each (503 when it runs out). Health checks are never
refused. A timed-out request's work in a thread still finishes (Python cannot stop a
thread); its answer is dropped.
"""

from __future__ import annotations

import json
from typing import Any

import anyio

Scope = dict[str, Any]
Message = dict[str, Any]


class RequestLimits:
    """ASGI middleware: a concurrency limit and a deadline per request."""

    def __init__(self, app: Any, max_concurrent: int, timeout: float) -> None:
        self.app = app
        self.max_concurrent = max_concurrent
        self.timeout = timeout
        self.active = 0  # requests in progress (one event loop: no lock needed)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/health/"):
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_concurrent:
            message = (
                f"the server is busy ({self.max_concurrent} requests in progress, "
                "limits.max_concurrent_requests): try again shortly"
            )
            await reply(send, 503, message, {"retry-after": "1"})
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        self.active += 1
        try:
            with anyio.move_on_after(self.timeout) as deadline:
                await self.app(scope, receive, tracked)
        finally:
            self.active -= 1
        if deadline.cancelled_caught and not started:
            message = f"the request took longer than {self.timeout:g} s (limits.request_timeout)"
            await reply(send, 503, message, {})


async def reply(send: Any, status: int, message: str, headers: dict[str, str]) -> None:
    """The server's error body (``{"detail", "errors"}``) straight on the ASGI channel."""
    body = json.dumps({"detail": message, "errors": []}).encode()
    fields = {"content-type": "application/json", "content-length": str(len(body)), **headers}
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode(), v.encode()) for k, v in fields.items()],
        }
    )
    await send({"type": "http.response.body", "body": body})
