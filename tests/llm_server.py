"""A small OpenAI-compatible chat-completions server for the tests, run as a real process on loopback.

It is not a language model: it answers deterministically from the last user message, and its behaviour is chosen
by the request's model name, so the client's retries, re-asks, cache, key handling and token accounting meet a
real HTTP server:
  echo       -> {"profile": "<sha of the prompt> ..."} at once
  flaky      -> HTTP 503 (Retry-After: 0) on the first request of each prompt, then as echo
  sloppy     -> a chatty answer without JSON first, valid JSON once re-asked
  broken     -> never JSON (some-broken: only for prompts holding BREAK)
  needs-key  -> HTTP 401 unless Authorization is 'Bearer test-key'
  busy, down -> HTTP 429 (Retry-After: 0), HTTP 500, on every request
  simulate   -> a simulated user's answer: clicks slot 1, a reason per slot, "more comedies"
  prefs      -> the preferences {"exclude": {"genres": ["Horror"]}} (bad-prefs: a malformed include; prefs-all:
                the 90s, niche, like "Star Wars (1977)")
and answers no client should crash on (each a 200 unless said): html (a web page), truncated (half a JSON body),
short (a Content-Length longer than the body, then the connection closes), list (a JSON list), partial-status (half a
status line, then close), trickle (a valid answer one byte every 0.2 s), huge (a 50 MB body).
GET /stats returns the number of chat requests received. Usage: python llm_server.py PORT
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNT = {"requests": 0}
SEEN: set[str] = set()
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/stats":
            self._send(200, dict(COUNT))
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": "not found"})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with LOCK:
            COUNT["requests"] += 1
        model, messages = body["model"], body["messages"]
        prompt = "\n".join(m["content"] for m in messages if m["role"] != "assistant")
        first_user = next(m["content"] for m in messages if m["role"] == "user")
        digest = hashlib.sha256(first_user.encode()).hexdigest()[:12]
        reasked = any(m["role"] == "assistant" for m in messages)
        if self._hostile(model):
            return
        if model == "needs-key" and self.headers.get("Authorization") != "Bearer test-key":
            self._send(401, {"error": {"message": "invalid api key"}})
            return
        if model in ("busy", "down"):
            self._send(429 if model == "busy" else 500, {"error": model}, {"Retry-After": "0"})
            return
        if model == "flaky":
            with LOCK:
                fresh = digest not in SEEN
                SEEN.add(digest)
            if fresh:
                self._send(503, {"error": "busy"}, {"Retry-After": "0"})
                return
        content = json.dumps({"profile": f"profile {digest}: {first_user.splitlines()[0][:60]}"})
        if model == "prefs":
            content = json.dumps({"include": {}, "exclude": {"genres": ["Horror"]}, "boost": {}, "min_year": 0,
                                  "max_year": 0, "popularity": "any", "similar_to": []})
        if model == "prefs-all":
            content = json.dumps({"include": {}, "exclude": {}, "boost": {}, "min_year": 1990, "max_year": 1999.0,
                                  "popularity": "niche", "similar_to": ["Star Wars (1977)"]})
        if model == "simulate":   # clicks the first item of the slate, names it, asks for more comedy
            content = json.dumps({"clicked": [1], "reasons": {"1": "looks fun", "2": "not my thing"},
                                  "command": "more comedies"})
        if model == "bad-prefs":
            content = json.dumps({"include": {"genres": "Horror"}, "exclude": {}, "boost": {}, "min_year": 0,
                                  "max_year": 0, "popularity": "any", "similar_to": []})
        if model == "broken" or (model == "sloppy" and not reasked) or (model == "some-broken" and "BREAK" in prompt):
            content = "Sure! Here is a lovely profile, no JSON though."
        self._send(200, {"id": "x", "object": "chat.completion", "model": model,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(content.split()),
                                   "total_tokens": len(prompt.split()) + len(content.split())}})

    def _hostile(self, model: str) -> bool:
        """The malformed answers of the module docstring; True when one was sent."""
        good = json.dumps({"choices": [{"message": {"content": json.dumps({"profile": "slow but fine"})}}]}).encode()
        raw = {"html": b"<html><body>Please log in</body></html>", "truncated": good[: len(good) // 2],
               "list": b"[1, 2, 3]"}.get(model)
        if raw is not None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html" if model == "html" else "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return True
        if model == "short":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(good) + 100))
            self.end_headers()
            self.wfile.write(good)
            self.close_connection = True
            return True
        if model == "partial-status":
            self.wfile.write(b"HTTP/1.1 20")
            self.close_connection = True
            return True
        if model in ("trickle", "huge"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(good) if model == "trickle" else 50 << 20))
            self.end_headers()
            try:
                if model == "trickle":
                    for i in range(len(good)):
                        self.wfile.write(good[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.2)
                else:
                    for _ in range(50 << 4):
                        self.wfile.write(b" " * (1 << 16))
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return True
        return False


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
