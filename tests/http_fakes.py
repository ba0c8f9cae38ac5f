"""The tests' fake HTTP servers (real sockets, threaded) and the pieces they share.

- `FakeVLLM`: vLLM's ``/score`` and ``/health`` (a DM server), scoring each pair by
  `score_of`; `step_context` and `expected_score` give the contexts the tests send and the
  scores it answers for them.
- `FakeChat`: an OpenAI-compatible chat server (a Reasoner server) that solves "3 + 4".
- `send_json`, `chat_completion`: a JSON reply, an OpenAI chat completion.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from drr_agent.scorers import StepContext


def send_json(handler: BaseHTTPRequestHandler, payload: Any, status: int = 200) -> None:
    """Answer the handler's request with ``payload`` as JSON."""
    body = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def chat_completion(
    text: str, model: str, *, id: str = "x", prompt_tokens: int = 5, completion_tokens: int = 3
) -> dict[str, Any]:
    """The body of an OpenAI ``chat.completion`` whose one choice says ``text``."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


# -- a DM server: vLLM's /score ------------------------------------------------------------------


def score_of(text_1: str, text_2: str) -> float:
    """A deterministic stand-in for the DM: depends on both texts, distinct per pair."""
    return (len(text_1) * 31 + len(text_2)) % 997 / 997


def step_context(i: int) -> StepContext:
    """The ``i``-th step context the scorer tests send (distinct texts per ``i``)."""
    return StepContext(f"What is {i} + 1?", ("First step.",), f"{i} + 1 = {i + 1}" + "!" * i)


def expected_score(ctx: StepContext) -> float:
    """The score `FakeVLLM` answers for ``ctx`` (`score_of` its DM text pair)."""
    from drr_agent.scorers import dm_text_pair

    return score_of(*dm_text_pair(ctx))


class FakeVLLM:
    """A threaded HTTP server with vLLM's /score and /health; records every batch.

    ``batches``: the size of every batch scored; ``authorization``: every POST's
    ``Authorization`` header. The first ``fail_first`` /score requests fail with
    ``fail_status`` (500: "overloaded", a 4xx: "bad input"); each scored batch waits
    ``delay_s`` first. Scores come back in reverse order (the client must order by index).
    """

    def __init__(self, *, fail_first: int = 0, delay_s: float = 0.0) -> None:
        self.batches: list[int] = []
        self.authorization: list[str | None] = []
        self.fail_first = fail_first
        self.fail_status = 500
        self.delay_s = delay_s
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self.send_response(200 if self.path == "/health" else 404)
                self.end_headers()

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.authorization.append(self.headers.get("Authorization"))
                if self.path != "/score":
                    self.send_response(404)
                    self.end_headers()
                    return
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_response(outer.fail_status)
                    self.end_headers()
                    self.wfile.write(b"overloaded" if outer.fail_status >= 500 else b"bad input")
                    return
                time.sleep(outer.delay_s)
                pairs = list(zip(body["text_1"], body["text_2"], strict=True))
                outer.batches.append(len(pairs))
                data = [{"index": i, "score": score_of(a, b)} for i, (a, b) in enumerate(pairs)]
                data.reverse()  # the client must order by index, not by position
                send_json(self, {"data": data})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- a Reasoner server: OpenAI chat completions --------------------------------------------------


class FakeChat:
    """A threaded OpenAI-compatible chat server: one step per call, the answer on call 2.

    It answers "3 + 4 = 7" until the prompt holds that step, then "Answer: 7"; ``calls``
    counts the requests, each waits ``delay_s``. ``url`` ends in ``/v1``.
    """

    def __init__(self, name: str, delay_s: float = 0.0) -> None:
        self.name = name
        self.calls = 0
        self.delay_s = delay_s
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/chat/completions", self.path
                outer.calls += 1
                time.sleep(outer.delay_s)
                prompt = body["messages"][-1]["content"]
                text = "Answer: 7" if "3 + 4 = 7" in prompt else "3 + 4 = 7"
                send_json(self, chat_completion(text, body["model"]))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
