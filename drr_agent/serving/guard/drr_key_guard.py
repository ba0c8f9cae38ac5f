"""`KeyGuard`: every route of a vLLM server but ``/health`` asks for the API key.

Why: vLLM's own ``--api-key`` check guards only paths under ``/v1`` (and a few other
prefixes). ``POST /invocations`` (its SageMaker-style route, which takes chat messages and
generates), ``/tokenize``, ``/detokenize`` and ``/metrics`` answer anyone. ``drr serve
--api-key`` adds this middleware (vLLM's ``--middleware drr_key_guard.KeyGuard``) so that a
key means the whole server is guarded: a request without ``Authorization: Bearer <key>`` gets
401 everywhere except ``/health``, which load balancers and ``drr serve`` itself poll.

It runs inside the vLLM process: standard library and starlette (which vLLM ships) only.
The key comes from ``VLLM_API_KEY``, as vLLM's own check reads it (never from argv, where
``ps`` would show it); tokens are compared as SHA-256 digests in constant time.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import Any

OPEN_PATHS = frozenset({"/health"})
"""What answers without the key: the liveness probe."""

KEY_ENV = "VLLM_API_KEY"


class KeyGuard:
    """Pure ASGI middleware: 401 for any HTTP or WebSocket request to a path outside
    `OPEN_PATHS` without the right bearer token (CORS preflight ``OPTIONS`` passes, as in
    vLLM's own check). Without a key in the environment it refuses to start: a guard that
    guards nothing would be worse than none."""

    def __init__(self, app: Any) -> None:
        key = os.environ.get(KEY_ENV, "")
        if not key:
            raise RuntimeError(f"KeyGuard needs the API key in ${KEY_ENV}")
        self.app = app
        self._digest = hashlib.sha256(key.encode()).digest()

    def _authorised(self, scope: dict[str, Any]) -> bool:
        headers = dict(scope.get("headers") or [])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return secrets.compare_digest(hashlib.sha256(token.encode()).digest(), self._digest)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
        if path in OPEN_PATHS or self._authorised(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b'{"error": "Unauthorized"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
