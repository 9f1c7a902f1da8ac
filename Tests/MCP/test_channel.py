"""loopsy-mcp as a Claude Code channel, driven line by line as Claude Code drives it.

Real daemons on loopback, the real loopsy-mcp binary; the JSON-RPC client is RawServer (no SDK),
so the exact notification methods and params are what is checked.
"""
import json
import os
import subprocess
import time
import uuid

from conftest import BIN, RawServer


def channel_events(raw):
    return [m for m in raw.messages() if m.get("method") == "notifications/claude/channel"]


def pair(nodes):
    """one (TLS on 127.0.0.2) and two (plain HTTP on 127.0.0.1, where one's calls back come from),
    introduced both ways; one's prompts go to two."""
    one = nodes("one", tls=True, edit=lambda c: c.replace("  approvers: []", "  approvers: [two]"))
    two = nodes("two")
    one.start(host="127.0.0.2")
    two.start()
    added = two.cli("peers", "add", "127.0.0.2", str(one.port), "--key-stdin", stdin=one.key + "\n")
    assert added.returncode == 0, added.stderr
    return one, two


def test_messages_arrive_as_channel_events_across_a_daemon_restart(nodes):
    one, two = pair(nodes)
    raw = RawServer(one)
    try:
        raw.initialize()
        init = next(m for m in raw.messages() if m.get("id") == 0)
        experimental = init["result"]["capabilities"]["experimental"]
        assert experimental == {"claude/channel": {}, "claude/channel/permission": {}}
        assert "<channel source=\"loopsy\"" in init["result"]["instructions"]

        # A message sent on machine two is pushed into the session on machine one.
        sent = time.time()
        result = two.cli("msg", "send", "one", "first from two", "--thread", "build", "--type", "request")
        assert result.returncode == 0, result.stderr
        event = raw.wait_for(lambda m: m.get("method") == "notifications/claude/channel", timeout=5)
        assert time.time() - sent < 5
        params = event["params"]
        assert params["content"] == "first from two"
        meta = params["meta"]
        two_id = two.api("GET", "/api/v1/status")["nodeId"]
        assert meta["user"] == "two" and meta["from_node"] == two_id
        assert meta["type"] == "request" and meta["thread"] == "build" and meta["message_id"].startswith("msg_")
        assert all(isinstance(v, str) for v in meta.values()) and "source" not in meta
        assert all(key.replace("_", "a").isalnum() and not key[0].isdigit() for key in meta)
        # The message is marked delivered-to-session; it stays unread until the tools read it.
        deadline = time.time() + 5
        stored = {}
        while time.time() < deadline and not stored.get("sessionAt"):
            stored = one.api("GET", "/api/v1/messages/inbox")["messages"][0]
            time.sleep(0.05)
        assert stored["sessionAt"] and stored["state"] == "unread", stored

        # The daemon restarts under the session: the channel resumes from its cursor, so the
        # message sent after the restart arrives once and the first is not shown again.
        port = one.port
        one.stop()
        time.sleep(0.5)
        one.start(host="127.0.0.2", port=port)
        result = two.cli("msg", "send", "one", "second from two")
        assert result.returncode == 0, result.stderr
        raw.wait_for(lambda m: m.get("method") == "notifications/claude/channel"
                     and m["params"]["content"] == "second from two", timeout=10)
        time.sleep(1)
        contents = [m["params"]["content"] for m in channel_events(raw)]
        assert contents == ["first from two", "second from two"], contents
    finally:
        raw.process.kill()


def test_channel_content_carries_no_terminal_controls(nodes):
    one, two = pair(nodes)
    raw = RawServer(one)
    try:
        raw.initialize()
        # C0 controls (ESC, BEL) are refused as message text where it is sent, and by a receiver.
        refused = two.cli("msg", "send", "one", "clear\x1b[2J")
        assert refused.returncode != 0 and "control character" in refused.stderr, refused.stderr
        # C1 controls (a one-byte CSI), bidi overrides, zero-width spaces and tag characters reach
        # no session; lines, tabs and emoji (with their zero-width joiner) do.
        body = ("clear\u009b2J \u202eevil\u202c \u2067x\u2069 li\u200bne\U000E0041\nnext\ttab "
                "\U0001F469\u200d\U0001F4BB")
        sent = two.cli("msg", "send", "one", body)
        assert sent.returncode == 0, sent.stderr
        event = raw.wait_for(lambda m: m.get("method") == "notifications/claude/channel", timeout=5)
        assert event["params"]["content"] == "clear2J evil x line\nnext\ttab \U0001F469\u200d\U0001F4BB"
    finally:
        raw.process.kill()


def test_a_thread_filter_lets_only_that_thread_through(nodes):
    one, two = pair(nodes)
    env = {**one.env, "LOOPSY_CHANNEL_THREAD": "ci"}
    process = subprocess.Popen([str(BIN / "loopsy-mcp")], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, bufsize=1)
    raw = RawServer.__new__(RawServer)
    raw.process, raw.lines = process, []
    import threading
    threading.Thread(target=raw._read, daemon=True).start()
    try:
        raw.initialize()
        assert two.cli("msg", "send", "one", "not for this session", "--thread", "other").returncode == 0
        assert two.cli("msg", "send", "one", "for ci", "--thread", "ci").returncode == 0
        raw.wait_for(lambda m: m.get("method") == "notifications/claude/channel", timeout=5)
        time.sleep(0.5)
        assert [m["params"]["content"] for m in channel_events(raw)] == ["for ci"]
    finally:
        process.kill()


def test_a_permission_prompt_is_answered_on_the_approver_peer(nodes):
    one, two = pair(nodes)
    three = nodes("three")
    three.start()
    assert three.cli("peers", "add", "127.0.0.2", str(one.port), "--key-stdin", stdin=one.key + "\n").returncode == 0
    # Both may answer prompts on one, but only two is an approver the prompt is sent to.
    for peer in ("two", "three"):
        granted = one.cli("peers", "grant", peer, "approvals")
        assert granted.returncode == 0, granted.stderr
    raw = RawServer(one)
    try:
        raw.initialize()
        request_id = uuid.uuid4().hex[:5]
        raw.send({"jsonrpc": "2.0", "method": "notifications/claude/channel/permission_request", "params": {
            "request_id": request_id, "tool_name": "Bash", "description": "Create a marker file",
            "input_preview": '{ "command": "touch /tmp/x" }', "tool_kind": "builtin"}})

        # Recorded on one, pending; forwarded to two as a message of type approval.
        deadline = time.time() + 10
        pending = []
        while time.time() < deadline and not pending:
            pending = one.api("GET", "/api/v1/approvals?state=pending")["approvals"]
            time.sleep(0.05)
        assert len(pending) == 1, pending
        approval = pending[0]
        assert approval["requestId"] == request_id and approval["toolName"] == "Bash"
        assert approval["sentTo"] == [two.api("GET", "/api/v1/status")["nodeId"]]
        listed = ""
        deadline = time.time() + 10
        while time.time() < deadline and approval["id"] not in listed:
            listed = two.cli("approvals").stdout
            time.sleep(0.1)
        assert approval["id"] in listed and "Bash" in listed and "loopsy approve" in listed, listed

        # A session on the approver's machine never sees the prompt through its tools, and
        # cannot hide it from the person either (an acked prompt leaves `loopsy approvals`).
        session = RawServer(two)
        try:
            session.initialize()
            session.send({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {
                "name": "loopsy_check_inbox", "arguments": {"unreadOnly": False, "markRead": True}}})
            inbox = session.wait_for(lambda m: m.get("id") == 41)
            assert approval["id"] not in json.dumps(inbox), inbox
            session.send({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": {
                "name": "loopsy_ack_message", "arguments": {"id": approval["id"]}}})
            acked = session.wait_for(lambda m: m.get("id") == 42)
            assert acked["result"]["isError"] and "loopsy approve" in json.dumps(acked), acked
        finally:
            session.process.kill()
        assert approval["id"] in two.cli("approvals").stdout
        refused = two.api("POST", f"/api/v1/messages/inbox/{approval['id']}/ack", {"keepApprovals": True})
        assert refused["error"]["code"] == "approval_for_a_person", refused

        # A peer it was not sent to cannot answer it, whatever its grants.
        foreign = three.api("POST", f"/api/v1/peers/one/approvals/{approval['id']}/answer", {"behavior": "allow"})
        assert foreign["error"]["code"] == "approval_not_yours", foreign

        # The approver answers on its own machine; the verdict reaches the session.
        answered = two.cli("approve", approval["id"])
        assert answered.returncode == 0, answered.stderr
        verdict = raw.wait_for(lambda m: m.get("method") == "notifications/claude/channel/permission", timeout=10)
        assert verdict["params"] == {"request_id": request_id, "behavior": "allow"}

        # A late answer is refused with what happened, and changes nothing.
        late = one.cli("approve", approval["id"], "--deny")
        assert late.returncode != 0 and "already answered: allowed by peer:" in late.stderr, late.stderr
        assert one.api("GET", f"/api/v1/approvals/{approval['id']}")["state"] == "allowed"
        time.sleep(0.5)
        verdicts = [m for m in raw.messages() if m.get("method") == "notifications/claude/channel/permission"]
        assert len(verdicts) == 1
    finally:
        raw.process.kill()
