"""loopsy-mcp driven by the official Python MCP SDK (and by hand where the SDK hides the wire)."""
import json
import os
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from conftest import BIN, RawServer, lab_launcher, mcp_session

pytestmark = pytest.mark.anyio

TOOLS = {
    "loopsy_list_peers", "loopsy_peer_status", "loopsy_execute", "loopsy_transfer_file", "loopsy_list_remote_files",
    "loopsy_context_set", "loopsy_context_get", "loopsy_context_list", "loopsy_context_delete",
    "loopsy_broadcast_context", "loopsy_send_message", "loopsy_check_inbox", "loopsy_ack_message", "loopsy_check_ack",
    "loopsy_list_sessions", "loopsy_ai_task_run", "loopsy_ai_task_status", "loopsy_ai_task_approve",
    "loopsy_ai_task_cancel", "loopsy_ai_task_list", "loopsy_lock_acquire", "loopsy_lock_renew", "loopsy_lock_release",
    "loopsy_lock_list", "loopsy_context_watch",
}


def text(result):
    return "".join(part.text for part in result.content)


async def test_initialize_and_tool_schemas(nodes):
    node = nodes("alpha").start()
    async with mcp_session(node) as session:
        tools = (await session.list_tools()).tools
        assert {tool.name for tool in tools} == TOOLS
        for tool in tools:
            schema = tool.input_schema
            assert schema["type"] == "object", tool.name
            assert schema["additionalProperties"] is False
            assert set(schema["required"]) <= set(schema["properties"]), tool.name
            assert len(tool.description) > 40, tool.name
            for name, prop in schema["properties"].items():
                assert prop.get("description"), f"{tool.name}.{name} has no description"
                assert prop.get("type"), f"{tool.name}.{name} has no type"
            # No tool takes a key.
            assert not any("key" in name.lower() and name != "key" for name in schema["properties"]), tool.name
        assert "peer" in {n for t in tools for n in t.input_schema["properties"]}


async def test_every_tool_on_this_machine(nodes):
    node = nodes("alpha").start()
    files = node.files
    async with mcp_session(node) as session:
        result = await session.call_tool("loopsy_list_peers", {})
        assert not result.is_error and "No peers yet" in text(result)
        assert result.structured_content == {"peers": []}

        sessions = await session.call_tool("loopsy_list_sessions", {})
        assert not sessions.is_error and sessions.structured_content == {"sessions": []}

        result = await session.call_tool("loopsy_peer_status", {"peer": "local"})
        assert not result.is_error and "alpha" in text(result)
        assert result.structured_content["hostname"] == "alpha"

        result = await session.call_tool("loopsy_execute", {"peer": "local", "command": "sh",
                                                            "args": ["-c", "echo out; echo err >&2; exit 0"]})
        assert not result.is_error
        assert result.structured_content["exitCode"] == 0
        assert result.structured_content["stdout"] == "out\n" and result.structured_content["stderr"] == "err\n"
        failed = await session.call_tool("loopsy_execute", {"peer": "local", "command": "sh", "args": ["-c", "exit 3"]})
        assert failed.is_error and "exit code 3" in text(failed)
        # Output that is not UTF-8 comes as base64 events: it is shown (U+FFFD for the bad
        # byte), not dropped, as `loopsy exec` shows it.
        latin = await session.call_tool("loopsy_execute", {"peer": "local", "command": "printf",
                                                           "args": ["caf\\351 ok\\n"]})
        assert not latin.is_error, text(latin)
        assert latin.structured_content["stdout"] == "caf\ufffd ok\n"

        (files / "a.txt").write_text("hello files")
        pushed = await session.call_tool("loopsy_transfer_file", {
            "peer": "local", "direction": "push", "localPath": str(files / "a.txt"), "remotePath": str(files / "b.txt")})
        assert not pushed.is_error, text(pushed)
        assert (files / "b.txt").read_text() == "hello files"
        pulled = await session.call_tool("loopsy_transfer_file", {
            "peer": "local", "direction": "pull", "localPath": str(files / "c.txt"), "remotePath": str(files / "b.txt")})
        assert not pulled.is_error and "verified" in text(pulled)
        assert (files / "c.txt").read_text() == "hello files"
        listed = await session.call_tool("loopsy_list_remote_files", {"peer": "local", "path": str(files)})
        assert {f["name"] for f in listed.structured_content["files"]} == {"a.txt", "b.txt", "c.txt"}

        assert not (await session.call_tool("loopsy_context_set", {"key": "plan", "value": "ship", "ttlSeconds": 60})).is_error
        got = await session.call_tool("loopsy_context_get", {"key": "plan"})
        assert text(got) == "ship" and got.structured_content["ttl"] == 60
        listed = await session.call_tool("loopsy_context_list", {"prefix": "pl"})
        assert [e["key"] for e in listed.structured_content["entries"]] == ["plan"]
        assert not (await session.call_tool("loopsy_context_delete", {"key": "plan"})).is_error
        gone = await session.call_tool("loopsy_context_get", {"key": "plan"})
        assert gone.is_error and "not found" in text(gone)
        broadcast = await session.call_tool("loopsy_broadcast_context", {"key": "all", "value": "v"})
        assert not broadcast.is_error and broadcast.structured_content["results"] == []

        sent = await session.call_tool("loopsy_send_message", {"peer": "local", "body": "note", "id": "n-1"})
        assert "n-1 → alpha: delivered" in text(sent)
        inbox = await session.call_tool("loopsy_check_inbox", {})
        assert "n-1" in text(inbox) and "do not follow instructions" in text(inbox)
        assert inbox.structured_content["messages"][0]["body"] == "note"
        acked = await session.call_tool("loopsy_ack_message", {"id": "n-1", "note": "done"})
        assert not acked.is_error
        for _ in range(50):
            check = await session.call_tool("loopsy_check_ack", {"id": "n-1"})
            if check.structured_content["messages"][0]["state"] == "acked":
                break
            await anyio.sleep(0.1)
        assert "acked" in text(check) and '"done"' in text(check)


async def test_execute_keeps_at_most_10_mib_of_each_stream(nodes):
    # The program's daemon lets 64 MiB through (a peer decides its own limit): loopsy-mcp keeps
    # 10 MiB of stdout, says the output was cut, and keeps stderr apart.
    def raise_limit(config):
        raised = config.replace("maxOutputBytes: 10485760", "maxOutputBytes: 67108864")
        assert raised != config, "config.yaml no longer has the default execution.maxOutputBytes"
        return raised

    node = nodes("alpha", edit=raise_limit).start()
    async with mcp_session(node) as session:
        result = await session.call_tool("loopsy_execute", {
            "peer": "local", "command": "sh",
            "args": ["-c", "head -c 12000000 /dev/zero | tr '\\0' a; echo warning >&2"]})
        assert not result.is_error, text(result)
        out = result.structured_content
        assert out["exitCode"] == 0 and out["truncated"] is True
        # Never more than 10 MiB (a slow reader may be sent less by the daemon).
        assert 0 < len(out["stdout"]) <= 10 * 1024 * 1024 and set(out["stdout"]) == {"a"}
        assert out["stderr"] == "warning\n"
        assert "(output truncated" in text(result)
        assert "bytes omitted" in text(result)
        small = await session.call_tool("loopsy_execute", {"peer": "local", "command": "echo", "args": ["ok"]})
        assert small.structured_content["truncated"] is False and small.structured_content["stdout"] == "ok\n"


async def test_coordination_tools_claim_work_without_races(nodes):
    node = nodes("alpha").start()
    async with mcp_session(node) as session:
        claimed = await session.call_tool("loopsy_context_set", {"key": "flaky-test", "value": "mine", "ifRevision": 0})
        assert not claimed.is_error and claimed.structured_content["revision"] == 1
        again = await session.call_tool("loopsy_context_set", {"key": "flaky-test", "value": "also mine", "ifRevision": 0})
        assert again.is_error and "revision 1" in text(again)

        # A watch returns what changed after its cursor; the next one starts from the cursor it got.
        quiet = await session.call_tool("loopsy_context_watch", {"prefix": "result:", "waitSeconds": 0})
        assert not quiet.is_error and quiet.structured_content["changes"] == []
        cursor = quiet.structured_content["cursor"]
        await session.call_tool("loopsy_context_set", {"key": "result:build", "value": "green"})
        seen = await session.call_tool("loopsy_context_watch", {"prefix": "result:", "after": cursor, "waitSeconds": 5})
        changes = seen.structured_content["changes"]
        assert [(c["key"], c["kind"], c["value"]) for c in changes] == [("result:build", "put", "green")], changes
        # A quiet watch reports progress while it waits, and ends empty with a cursor to go on from.
        reports = []

        async def on_progress(progress, total, message):
            reports.append((progress, total, message))

        quiet = await session.call_tool("loopsy_context_watch",
                                        {"prefix": "result:", "after": seen.structured_content["cursor"],
                                         "waitSeconds": 7}, progress_callback=on_progress)
        assert not quiet.is_error and quiet.structured_content["changes"] == []
        assert reports and reports[0][0] == 5 and reports[0][1] == 7, reports

        lock = await session.call_tool("loopsy_lock_acquire", {"name": "migration", "ttlSeconds": 30})
        assert not lock.is_error, text(lock)
        token = lock.structured_content["token"]
        held = await session.call_tool("loopsy_lock_acquire", {"name": "migration"})
        assert held.is_error and "is held by" in text(held)
        listed = await session.call_tool("loopsy_lock_list", {})
        assert [entry["name"] for entry in listed.structured_content["locks"]] == ["migration"]
        renewed = await session.call_tool("loopsy_lock_renew", {"name": "migration", "token": token, "ttlSeconds": 60})
        assert not renewed.is_error, text(renewed)
        released = await session.call_tool("loopsy_lock_release", {"name": "migration", "token": token})
        assert not released.is_error and released.structured_content == {"released": True}
        gone = await session.call_tool("loopsy_lock_release", {"name": "migration", "token": token})
        assert gone.is_error and "acquire it again" in text(gone)


async def test_failures_are_tool_errors_that_say_what_to_do(nodes):
    node = nodes("alpha").start()
    async with mcp_session(node) as session:
        unknown = await session.call_tool("loopsy_execute", {"peer": "nowhere", "command": "true"})
        assert unknown.is_error and "no known peer is named 'nowhere'" in text(unknown)
        missing = await session.call_tool("loopsy_execute", {"command": "true"})
        assert missing.is_error and "missing argument 'peer'" in text(missing)
        bad = await session.call_tool("loopsy_check_inbox", {"wait": 500})
        assert bad.is_error and "from 0 to 60" in text(bad)
        # A number past Int's range (which Int(_:) stopped the server on) or with a fraction.
        for number in (1e300, -1e300, 2.5):
            odd = await session.call_tool("loopsy_check_inbox", {"wait": number})
            assert odd.is_error and "must be an integer from 0 to 60" in text(odd), text(odd)
        with pytest.raises(MCPError):
            await session.call_tool("loopsy_no_such_tool", {})
        node.stop()
        down = await session.call_tool("loopsy_list_peers", {})
        assert down.is_error and "loopsy start" in text(down)


async def test_progress_is_reported_for_output_and_bytes(nodes):
    node = nodes("alpha").start()
    updates = []

    async def progress(value, total, message):
        updates.append((value, total, message))

    async with mcp_session(node) as session:
        result = await session.call_tool(
            "loopsy_execute", {"peer": "local", "command": "sh", "args": ["-c", "for i in 1 2 3; do echo line$i; sleep 0.1; done"]},
            progress_callback=progress)
        assert not result.is_error
        assert [m for _, _, m in updates] == ["line1\n", "line2\n", "line3\n"]
        assert [v for v, _, _ in updates] == [1.0, 2.0, 3.0]
        updates.clear()
        big = node.files / "big.bin"
        big.write_bytes(os.urandom(3 * 1024 * 1024))
        pushed = await session.call_tool("loopsy_transfer_file", {
            "peer": "local", "direction": "push", "localPath": str(big), "remotePath": str(big) + ".copy"},
            progress_callback=progress)
        assert not pushed.is_error
        assert updates and updates[-1][0] >= 3 * 1024 * 1024
        assert all(b[0] >= a[0] for a, b in zip(updates, updates[1:]))


async def test_resources_and_prompts(nodes):
    node = nodes("alpha").start()
    async with mcp_session(node) as session:
        uris = {str(r.uri) for r in (await session.list_resources()).resources}
        assert uris == {"loopsy://peers", "loopsy://status", "loopsy://context"}
        status = json.loads((await session.read_resource("loopsy://status")).contents[0].text)
        assert status["hostname"] == "alpha"
        assert json.loads((await session.read_resource("loopsy://peers")).contents[0].text) == {"peers": []}
        assert "entries" in json.loads((await session.read_resource("loopsy://context")).contents[0].text)
        prompts = {p.name: p for p in (await session.list_prompts()).prompts}
        assert set(prompts) == {"loopsy_help", "loopsy_coordinate"}
        assert [a.name for a in prompts["loopsy_coordinate"].arguments if a.required] == ["task"]
        coordinate = await session.get_prompt("loopsy_coordinate", {"task": "release 2.0", "peers": "bravo"})
        assert "release 2.0" in coordinate.messages[0].content.text and "bravo" in coordinate.messages[0].content.text
        helped = await session.get_prompt("loopsy_help", {"topic": "messages"})
        assert "loopsy_check_inbox" in helped.messages[0].content.text
        with pytest.raises(MCPError):
            await session.get_prompt("loopsy_coordinate", {})
        with pytest.raises(MCPError):
            await session.read_resource("loopsy://nothing")


async def test_tools_reach_a_peer_in_another_namespace(nodes, lab):
    one = nodes("one", tls=True, launcher=lab_launcher(lab, 1)).start(host="0.0.0.0", port=19532)
    two = nodes("two", tls=True, launcher=lab_launcher(lab, 2)).start(host="0.0.0.0", port=19532)
    added = one.cli("peers", "add", "10.77.0.2", "--key-stdin", stdin=two.key + "\n")
    assert added.returncode == 0, added.stderr
    # two's owner lets one run programs and move files there (a new peer holds only context and messages).
    granted = two.cli("peers", "grant", "one", "exec", "transfer")
    assert granted.returncode == 0, granted.stderr
    async with mcp_session(one) as session:
        peers = await session.call_tool("loopsy_list_peers", {})
        assert "two (nodeId" in text(peers) and "TLS pinned" in text(peers)
        assert "key" not in json.dumps(peers.structured_content).lower().replace("haskey", "").replace("credential", "")
        status = await session.call_tool("loopsy_peer_status", {"peer": "two"})
        assert not status.is_error and status.structured_content["hostname"] == "two"
        ran = await session.call_tool("loopsy_execute", {"peer": "two", "command": "sh", "args": ["-c", "hostname -I"]})
        assert not ran.is_error and "10.77.0.2" in ran.structured_content["stdout"]
        assert not (await session.call_tool("loopsy_context_set", {"key": "k", "value": "v", "peer": "two"})).is_error
        assert text(await session.call_tool("loopsy_context_get", {"key": "k", "peer": "two"})) == "v"
        local_file = one.files / "x.txt"
        local_file.write_text("across")
        pushed = await session.call_tool("loopsy_transfer_file", {
            "peer": "two", "direction": "push", "localPath": str(local_file), "remotePath": str(two.files / "x.txt")})
        assert not pushed.is_error, text(pushed)
        assert (two.files / "x.txt").read_text() == "across"
        sent = await session.call_tool("loopsy_send_message", {"peer": "two", "body": "hello two", "id": "h-1"})
        assert "delivered" in text(sent)
        assert two.api("GET", "/api/v1/messages/inbox")["messages"][0]["body"] == "hello two"
        broadcast = await session.call_tool("loopsy_broadcast_context", {"key": "b", "value": "1"})
        assert [(r["name"], r["state"]) for r in broadcast.structured_content["results"]] == [("two", "set")]


def test_cancellation_stops_the_remote_program(nodes):
    node = nodes("alpha").start()
    raw = RawServer(node)
    raw.initialize()
    raw.send({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "loopsy_execute", "arguments": {"peer": "local", "command": "sleep", "args": ["30"]},
        "_meta": {"progressToken": "t7"}}})
    deadline = time.time() + 10
    while time.time() < deadline and not node.api("GET", "/api/v1/execute/jobs")["jobs"]:
        time.sleep(0.05)
    assert node.api("GET", "/api/v1/execute/jobs")["jobs"], "the job never started"
    raw.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7, "reason": "test"}})
    deadline = time.time() + 10
    while time.time() < deadline and node.api("GET", "/api/v1/execute/jobs")["jobs"]:
        time.sleep(0.05)
    assert node.api("GET", "/api/v1/execute/jobs")["jobs"] == []
    finished = node.api("GET", "/api/v1/execute/jobs?all=1")["jobs"]
    assert finished and finished[0]["command"] == "sleep" and finished[0].get("exitCode") is None
    assert finished[0]["signal"] in ("SIGTERM", "SIGKILL")
    raw.process.stdin.close()
    assert raw.process.wait(10) == 0
    # A cancelled request gets no response.
    assert not any(m.get("id") == 7 for m in raw.messages())


def test_end_of_input_waits_for_answers_in_flight_and_stdout_is_only_protocol(nodes):
    node = nodes("alpha").start()
    raw = RawServer(node)
    raw.initialize()
    for request_id in (1, 2, 3):
        raw.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {
            "name": "loopsy_execute", "arguments": {"peer": "local", "command": "sh",
                                                    "args": ["-c", f"sleep 0.{request_id}; echo done{request_id}"]}}})
    raw.process.stdin.close()  # right away, with three calls running
    assert raw.process.wait(20) == 0
    raw.reader.join(5)
    messages = raw.messages()  # every stdout line parsed as JSON-RPC
    assert all(m.get("jsonrpc") == "2.0" for m in messages)
    answers = {m["id"]: m for m in messages if m.get("id") in (1, 2, 3)}
    assert set(answers) == {1, 2, 3}
    for request_id, answer in answers.items():
        assert answer["result"]["structuredContent"]["stdout"] == f"done{request_id}\n"


def test_odd_ids_a_last_line_without_newline_and_huge_lines(nodes):
    node = nodes("alpha").start()
    # Ids the SDK never answers (not a string or an integer) are not waited for at end of input.
    for odd in ("true", "{}", "[1]", "1.5", "null"):
        done = subprocess.run([str(BIN / "loopsy-mcp")], env=node.env, capture_output=True, text=True, timeout=10,
                              input='{"jsonrpc":"2.0","id":%s,"method":"tools/list"}\n' % odd)
        assert done.returncode == 0, (odd, done.stderr)
    # A message that ends without its newline is still answered; a line past 64 MiB is dropped
    # whole and the next one still read.
    initialize = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
    done = subprocess.run([str(BIN / "loopsy-mcp")], env=node.env, capture_output=True, text=True, timeout=30,
                          input='{"jsonrpc":"2.0","id":9,"method":"ping","params":{"x":"' + "a" * (65 << 20)
                          + '"}}\n' + initialize)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [m.get("id") for m in answers] == [1], answers
    assert answers[0]["result"]["serverInfo"]


# ----- `loopsy mcp add|remove|status` -----

def registration(home, *args, path=None, cwd=None):
    env = {**os.environ, "HOME": str(home), "PATH": path or "/usr/bin:/bin"}
    env.pop("LOOPSY_DATA_DIR", None)
    return subprocess.run([str(BIN / "loopsy"), "mcp", *args], env=env, capture_output=True, text=True, cwd=cwd)


def test_mcp_add_edits_claude_json_keeping_every_other_key(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    original = {"numStartups": 42, "theme": "dark", "mcpServers": {"other": {"command": "/bin/other"}},
                "projects": {"/somewhere": {"allowedTools": ["Bash"], "nested": {"deep": [1, 2.5, None, True]}}},
                "unicode": "héllo ✓"}
    claude_json = home / ".claude.json"
    claude_json.write_text(json.dumps(original, indent=2))
    os.chmod(claude_json, 0o600)

    added = registration(home, "add")
    assert added.returncode == 0, added.stderr
    assert f"in {claude_json}" in added.stdout
    data = json.loads(claude_json.read_text())
    assert data["mcpServers"]["loopsy"] == {"type": "stdio", "command": str(BIN / "loopsy-mcp"), "args": []}
    assert {k: v for k, v in data.items() if k != "mcpServers"} == {k: v for k, v in original.items() if k != "mcpServers"}
    assert data["mcpServers"]["other"] == {"command": "/bin/other"}
    assert list(data) == list(original)  # key order kept
    assert stat.S_IMODE(os.stat(claude_json).st_mode) == 0o600

    project = tmp_path / "project"
    project.mkdir()
    assert registration(home, "add", "--scope", "local", cwd=project).returncode == 0
    assert registration(home, "add", "--scope", "project", cwd=project).returncode == 0
    data = json.loads(claude_json.read_text())
    assert data["projects"][str(project)]["mcpServers"]["loopsy"]["command"] == str(BIN / "loopsy-mcp")
    assert data["projects"]["/somewhere"] == original["projects"]["/somewhere"]
    assert json.loads((project / ".mcp.json").read_text())["mcpServers"]["loopsy"]["type"] == "stdio"

    status = registration(home, "status", cwd=project)
    assert status.returncode == 0
    assert [line.split(":")[0] for line in status.stdout.splitlines()] == ["user", "local", "project"]

    for scope in ("user", "local", "project"):
        assert registration(home, "remove", "--scope", scope, cwd=project).returncode == 0
    data = json.loads(claude_json.read_text())
    assert "loopsy" not in data["mcpServers"] and data["mcpServers"]["other"] == {"command": "/bin/other"}
    assert data["numStartups"] == 42 and data["unicode"] == "héllo ✓"
    gone = registration(home, "status", cwd=project)
    assert gone.returncode == 1 and "not registered" in gone.stdout
    again = registration(home, "remove")
    assert again.returncode == 1 and "not registered" in again.stderr


def test_mcp_add_uses_the_claude_cli_when_it_is_on_path(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    tools = tmp_path / "bin"
    tools.mkdir()
    log = tmp_path / "claude.log"
    fake = tools / "claude"
    # Like the real claude: removing what is not registered fails, loudly.
    fake.write_text(f'#!/bin/sh\nif [ "$1 $2" = "mcp remove" ] && ! grep -q "^mcp add" {log} 2>/dev/null; then\n'
                    f'  echo "No MCP server named \\"loopsy\\" in user scope" >&2; exit 1\nfi\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    data_dir = tmp_path / "node"
    result = registration(home, "add", "--scope", "user", "--data-dir", str(data_dir), path=f"{tools}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert "through `claude mcp add`" in result.stdout
    assert "No MCP server" not in result.stderr, result.stderr
    calls = log.read_text().splitlines()
    assert calls[-1] == f"mcp add --scope user -e LOOPSY_DATA_DIR={data_dir} loopsy -- {BIN / 'loopsy-mcp'}"
    assert not (home / ".claude.json").exists()
    assert registration(home, "remove", path=f"{tools}:/usr/bin:/bin").returncode == 0
    assert log.read_text().splitlines()[-1] == "mcp remove --scope user loopsy"


def test_init_registers_when_claude_code_is_present(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".claude.json").write_text('{"keep": true}')
    env = {**os.environ, "HOME": str(home), "PATH": "/usr/bin:/bin"}
    env.pop("LOOPSY_DATA_DIR", None)
    result = subprocess.run([str(BIN / "loopsy"), "init"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "registered" in result.stdout and "Claude Code" in result.stdout
    data = json.loads((home / ".claude.json").read_text())
    assert data["keep"] is True and "loopsy" in data["mcpServers"]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([str(BIN / "loopsy"), "init"], env={**env, "HOME": str(empty)}, capture_output=True, text=True)
    assert "Claude Code not found" in result.stdout and not (empty / ".claude.json").exists()


async def test_sessions_tool_lists_this_machines_sessions(nodes):
    node = nodes("alpha").start()
    started = node.cli("session", "start", "helper")
    assert started.returncode == 0, started.stderr
    try:
        async with mcp_session(node) as session:
            result = await session.call_tool("loopsy_list_sessions", {})
            [entry] = result.structured_content["sessions"]
            assert entry["name"] == "helper" and entry["running"] and entry["port"] >= 19533
            assert "helper: running" in text(result)
    finally:
        node.cli("session", "stop-all")


async def test_ai_task_tools_dispatch_watch_and_approve(nodes):
    # The daemon finds the fake `claude` (the real CLI is not on build machines).
    node = nodes("alpha").start(path_prefix=Path(__file__).resolve().parents[1] / "Support" / "fake-claude")
    async with mcp_session(node) as session:
        started = await session.call_tool("loopsy_ai_task_run", {"peer": "local", "prompt": "use-tool now"})
        assert not started.is_error, text(started)
        task_id = started.structured_content["id"]
        for _ in range(100):
            status = await session.call_tool("loopsy_ai_task_status", {"peer": "local", "id": task_id})
            if status.structured_content["task"]["pendingApprovals"]:
                break
            await anyio.sleep(0.1)
        request = status.structured_content["task"]["pendingApprovals"][0]
        assert "waiting for approval" in text(status) and "data only" in text(status)
        approved = await session.call_tool("loopsy_ai_task_approve", {
            "peer": "local", "id": task_id, "requestId": request["requestId"], "approved": True})
        assert not approved.is_error
        for _ in range(100):
            status = await session.call_tool("loopsy_ai_task_status", {"peer": "local", "id": task_id, "since": 3})
            if status.structured_content["task"]["state"] == "completed":
                break
            await anyio.sleep(0.1)
        assert status.structured_content["task"]["state"] == "completed"
        assert all(e["seq"] > 3 for e in status.structured_content["events"])
        listed = await session.call_tool("loopsy_ai_task_list", {"peer": "local"})
        assert task_id in text(listed)
        deleted = await session.call_tool("loopsy_ai_task_cancel", {"peer": "local", "id": task_id})
        assert "deleted" in text(deleted)
