#!/usr/bin/env python3
"""A scripted stand-in for the Anthropic Messages API, for driving the real Claude Code CLI offline.

Usage: mock_api.py LOGFILE        (binds 127.0.0.1 on an ephemeral port and prints "port N")

Every request (method, path, JSON body) is appended to LOGFILE as one JSON line. POST /v1/messages
answers, streamed as SSE like the real API (or as one JSON message when the request is not a stream),
depending on the last non-system message of the conversation:
  * it holds a tool_result                                  -> text "TOOL_DONE"
  * it holds a <channel source="loopsy" block and the request
    offers the Bash tool (the main loop, not a side request) -> tool_use Bash {"command": $MOCK_BASH_COMMAND}
  * anything else                                           -> text "MOCK_OK"
Adapted from the channel research (Claude Code 2.1.332 also sends role "system" entries inside
messages[]; they are skipped).
"""
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = sys.argv[1]
BASH_COMMAND = os.environ.get("MOCK_BASH_COMMAND", "true")
lock = threading.Lock()


def log(entry):
    with lock, open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")


def text_of(content):
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            inner = block.get("content")
            parts.append("TOOL_RESULT:" + (inner if isinstance(inner, str) else text_of(inner)))
    return "\n".join(parts)


def decide(body):
    messages = [m for m in (body.get("messages") or []) if m.get("role") != "system"]
    last = messages[-1] if messages else {"role": "user", "content": ""}
    content = last.get("content")
    if isinstance(content, list) and any(b.get("type") == "tool_result" for b in content):
        return [{"type": "text", "text": "TOOL_DONE"}], "end_turn"
    tools = [t.get("name") for t in (body.get("tools") or [])]
    if '<channel source="loopsy"' in text_of(content) and "Bash" in tools:
        return [{"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": "Bash",
                 "input": {"command": BASH_COMMAND, "description": "Create the channel test marker file"}}], "tool_use"
    return [{"type": "text", "text": "MOCK_OK"}], "end_turn"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {"_raw": raw.decode("utf-8", "replace")}

    def _json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        log({"t": time.time(), "method": "GET", "path": self.path})
        if self.path.startswith("/v1/models"):
            return self._json(200, {"data": [{"id": "claude-sonnet-4-5", "type": "model", "display_name": "mock"}],
                                    "has_more": False})
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not mocked"}})

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        body = self._body()
        log({"t": time.time(), "method": "POST", "path": self.path, "body": body})
        if "count_tokens" in self.path:
            return self._json(200, {"input_tokens": 10})
        if not self.path.startswith("/v1/messages"):
            return self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not mocked"}})
        blocks, stop = decide(body)
        model = body.get("model", "claude-sonnet-4-5")
        message_id = "msg_" + uuid.uuid4().hex[:20]
        usage = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        if not body.get("stream"):
            return self._json(200, {"id": message_id, "type": "message", "role": "assistant", "model": model,
                                    "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()

        def event(name, data):
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        event("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage}})
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                event("content_block_start", {"type": "content_block_start", "index": index,
                                              "content_block": {"type": "text", "text": ""}})
                event("content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "text_delta", "text": block["text"]}})
            else:
                event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
            event("content_block_stop", {"type": "content_block_stop", "index": index})
        event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                "usage": {"output_tokens": 5}})
        event("message_stop", {"type": "message_stop"})
        self.close_connection = True


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()
