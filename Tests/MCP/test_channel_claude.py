"""loopsy-mcp as a channel of the real Claude Code CLI, end to end.

Two real nodes on loopback; the real `claude` (the binary bundled in the pinned claude-agent-sdk
wheel) runs interactively under tmux against a scripted mock of the Anthropic API
(claude/mock_api.py), with the built loopsy-mcp as its `loopsy` channel on node one. A message two
sends must reach the model as a <channel source="loopsy" …> block; the Bash call the mock model
answers with must show up as a pending approval on node one, and `loopsy approve` there must reach
Claude Code as the verdict that lets the command run.

Channels only work in an interactive session, behind two GrowthBook flags (seeded into the temp
HOME's .claude.json and read from there with CLAUDE_CODE_GB_DISK_CACHE_WHEN_TELEMETRY_OFF) and the
--dangerously-load-development-channels flag, whose warning dialog the test accepts.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import BIN

HERE = Path(__file__).resolve().parent
MOCK_API = HERE / "claude" / "mock_api.py"
API_KEY = "sk-ant-api03-loopsy-test-" + "A" * 40
CHANNEL_BLOCK = re.compile(r'<channel source="loopsy"([^>]*)>\n(.*?)\n</channel>', re.S)
ATTRIBUTE = re.compile(r' ([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"')


def claude_binary():
    """The Claude Code CLI bundled in the claude-agent-sdk wheel (Tests/MCP/requirements.txt)."""
    try:
        import claude_agent_sdk
    except ImportError:
        pytest.fail("claude-agent-sdk is not installed in this Python "
                    f"({sys.executable}); Tests/MCP/requirements.txt pins it and scripts/test.sh installs it")
    path = Path(claude_agent_sdk.__file__).resolve().parent / "_bundled" / "claude"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"the Claude Code CLI is not where claude-agent-sdk bundles it: {path} is missing "
                    "(a wheel for another platform, or a version that no longer bundles it?)")
    return path


def wait_until(what, predicate, timeout, interval=0.25, evidence=None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s" + (f"\n{evidence()}" if evidence else ""))
        time.sleep(interval)


def descendants(pid):
    """Every process below pid (read from /proc), deepest last."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rfind(")") + 2:].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class ClaudeSession:
    """The real claude in a tmux session of its own (own socket), against the mock API, with
    loopsy-mcp on `node` as the channel `loopsy`. Everything lives in one temp dir."""

    def __init__(self, claude, node):
        self.claude = claude
        self.node = node
        self.dir = Path(tempfile.mkdtemp(prefix="loopsy-claude-"))
        self.home, self.work = self.dir / "home", self.dir / "work"
        self.home.mkdir()
        self.work.mkdir()
        self.api_log = self.dir / "api_requests.jsonl"
        self.debug_log = self.dir / "claude-debug.log"
        self.mcp_stderr = self.dir / "loopsy-mcp.stderr"
        self.socket = "loopsy-claude-" + uuid.uuid4().hex[:8]
        self.mock = None
        self.pane_pid = None
        self.tmux_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                         "TERM": "xterm-256color", "LANG": "C.UTF-8", "TMUX_TMPDIR": str(self.dir)}

    # ----- setup -----

    def start(self, bash_command):
        """The mock API (its model answers a channel event with Bash `bash_command`), then claude."""
        self.mock = subprocess.Popen([sys.executable, str(MOCK_API), str(self.api_log)],
                                     env={**os.environ, "MOCK_BASH_COMMAND": bash_command},
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.mock.stdout.readline()
        match = re.match(r"port (\d+)", line)
        assert match, f"the mock API did not start: {line!r}"
        self.api_port = int(match.group(1))
        # No first-run dialog but the development-channels warning: onboarding done, the API key
        # approved, the folder trusted; and the channel flags in the GrowthBook disk cache.
        (self.home / ".claude").mkdir()
        (self.home / ".claude.json").write_text(json.dumps({
            "hasCompletedOnboarding": True, "lastOnboardingVersion": "2.1.332", "theme": "dark", "numStartups": 5,
            "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
            "projects": {str(self.work): {"hasTrustDialogAccepted": True, "allowedTools": [],
                                          "hasCompletedProjectOnboarding": True}},
            "cachedGrowthBookFeatures": {"tengu_harbor": True, "tengu_harbor_permissions": True},
        }, indent=1))
        # loopsy-mcp itself, its stderr kept for the evidence (sh only redirects, then execs it).
        mcp_config = self.dir / "mcp.json"
        mcp_config.write_text(json.dumps({"mcpServers": {"loopsy": {
            "type": "stdio", "command": "/bin/sh",
            "args": ["-c", 'exec "$0" 2>>"$1"', str(BIN / "loopsy-mcp"), str(self.mcp_stderr)],
            "env": {"LOOPSY_DATA_DIR": str(self.node.dir)}}}}))
        env = {"HOME": self.home, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{self.api_port}",
               "ANTHROPIC_API_KEY": API_KEY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": 1, "DISABLE_TELEMETRY": 1,
               "DISABLE_AUTOUPDATER": 1, "CLAUDE_CODE_GB_DISK_CACHE_WHEN_TELEMETRY_OFF": 1, "IS_SANDBOX": 1,
               "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": 1}
        args = [self.claude, "--mcp-config", mcp_config, "--strict-mcp-config",
                "--dangerously-load-development-channels", "server:loopsy",
                "--permission-mode", "default", "--debug-file", self.debug_log]
        script = self.dir / "run.sh"
        script.write_text("".join(f"export {k}={quote(v)}\n" for k, v in env.items())
                          + "exec " + " ".join(quote(a) for a in args) + "\n")
        subprocess.run(self.tmux("new-session", "-d", "-s", "claude", "-x", "200", "-y", "50", "-c", str(self.work),
                                 f"sh {quote(script)}"), env=self.tmux_env, check=True, capture_output=True)
        self.pane_pid = int(subprocess.run(self.tmux("display-message", "-p", "-t", "claude", "#{pane_pid}"),
                                           env=self.tmux_env, capture_output=True, text=True, check=True).stdout)
        return self

    def wait_for_channel(self, timeout=40):
        """Accepts the development-channels warning, then waits until Claude Code registered the
        channel (fails at once with its reason when it skipped it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.debug()
            skipped = re.search(r'MCP server "loopsy": Channel notifications skipped: (.*)', log)
            assert not skipped, f"Claude Code did not load loopsy as a channel: {skipped.group(1)}\n{self.evidence()}"
            screen = self.screen()
            if "I am using this for local development" in screen:
                self.keys("Enter")  # the first option of the development-channels warning
            elif 'MCP server "loopsy": Channel notifications registered' in log:
                return
            elif "Do you want to use this API key" in screen:
                self.keys("Up", "Enter")
            elif "Press Enter to continue" in screen:
                self.keys("Enter")
            assert self.alive(), f"claude exited\n{self.evidence()}"
            time.sleep(0.5)
        raise AssertionError(f"Claude Code never registered the loopsy channel within {timeout} s\n{self.evidence()}")

    # ----- observation -----

    def tmux(self, *args):
        return ["tmux", "-L", self.socket, "-f", "/dev/null", *args]

    def keys(self, *keys):
        subprocess.run(self.tmux("send-keys", "-t", "claude", *keys), env=self.tmux_env, capture_output=True)
        time.sleep(0.3)

    def screen(self):
        return subprocess.run(self.tmux("capture-pane", "-p", "-t", "claude"), env=self.tmux_env,
                              capture_output=True, text=True).stdout

    def alive(self):
        return self.pane_pid is not None and Path(f"/proc/{self.pane_pid}").exists()

    def debug(self):
        try:
            return self.debug_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def requests(self):
        """The bodies of the Messages API requests the mock received."""
        if not self.api_log.exists():
            return []
        bodies = []
        for line in self.api_log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line being written
            if entry.get("method") == "POST" and entry.get("path", "").startswith("/v1/messages") \
                    and "count_tokens" not in entry["path"]:
                bodies.append(entry["body"])
        return bodies

    def evidence(self):
        """What to look at when it fails: the screen, the channel lines of claude's debug log,
        loopsy-mcp's stderr, what node one's daemon served and holds, and what the mock API got."""
        noise = ("file permissions", "original permissions", "temp file", "written atomically", "Renaming ")
        channel_lines = [line[:500] for line in self.debug().splitlines()
                         if re.search(r'channel|MCP server "loopsy"|permission|\[ERROR\]', line, re.I)
                         and not any(n in line for n in noise)]
        stderr = self.mcp_stderr.read_text(errors="replace") if self.mcp_stderr.exists() else "(none)"
        try:  # loopsyd logs to stderr, which the conftest drops: its audit log says what it served
            entries = sorted(self.node.api("GET", "/api/v1/audit?limit=1000")["entries"], key=lambda e: e["id"])
            audit = [f'{e["method"]} {e["path"]} {e["status"]} {e["caller"]}' for e in entries
                     if e["path"] not in ("/api/v1/approvals", "/api/v1/audit")]  # not the test's polling
            approvals = json.dumps(self.node.api("GET", "/api/v1/approvals")["approvals"])
        except Exception as error:  # the daemon is gone
            audit, approvals = [f"(no audit: {error})"], "(unknown)"
        bodies = self.requests()
        last = json.dumps(bodies[-1].get("messages", [])[-3:])[-3000:] if bodies else "(none)"
        return "\n".join([
            "----- screen -----", self.screen(),
            "----- claude debug log (channel/MCP/error lines, last 40) -----", *channel_lines[-40:],
            "----- loopsy-mcp stderr -----", stderr[-3000:],
            "----- node one: requests served (audit, last 40, without the test's own polls) -----", *audit[-40:],
            "----- node one: approvals -----", approvals,
            f"----- mock API: {len(bodies)} Messages requests; last messages of the last one -----", last,
        ])

    # ----- teardown -----

    def close(self):
        processes = descendants(self.pane_pid) if self.pane_pid else []
        if self.pane_pid:
            processes.insert(0, self.pane_pid)
        subprocess.run(self.tmux("kill-server"), env=self.tmux_env, capture_output=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in processes):
            time.sleep(0.1)
        for pid in processes:  # claude, its shell and loopsy-mcp, if the hangup left any
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.mock and self.mock.poll() is None:
            self.mock.terminate()
            self.mock.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def quote(value):
    return "'" + str(value).replace("'", "'\\''") + "'"


def channel_blocks(bodies, marker):
    """The attributes of every <channel source="loopsy"> block carrying marker in a message of the
    conversation (not in the system prompt, where loopsy-mcp's instructions describe the block)."""
    found = []
    for body in bodies:
        for message in body.get("messages", []):
            content = message.get("content")
            texts = [content] if isinstance(content, str) else \
                [b.get("text", "") for b in content or [] if b.get("type") == "text"]
            for text in texts:
                for attributes, inner in CHANNEL_BLOCK.findall(text):
                    if marker in inner:
                        found.append((dict(ATTRIBUTE.findall(attributes)), inner))
    return found


def bash_results(bodies):
    """The tool_results Claude Code sent back for the mock model's Bash calls."""
    def blocks(kind):
        return [block for body in bodies for message in body.get("messages", [])
                if isinstance(message.get("content"), list) for block in message["content"] if block.get("type") == kind]
    calls = {block["id"] for block in blocks("tool_use") if block.get("name") == "Bash"}
    return [block for block in blocks("tool_result") if block.get("tool_use_id") in calls]


def test_messages_reach_claude_code_and_its_permission_prompts_are_answered_on_loopsy(nodes):
    started = time.monotonic()
    claude = claude_binary()
    assert shutil.which("tmux"), "tmux is not installed: this test runs claude in it (scripts/test.sh installs it)"
    one = nodes("one").start()
    two = nodes("two").start()
    added = two.cli("peers", "add", "127.0.0.1", str(one.port), "--key-stdin", "--insecure-http", stdin=one.key + "\n")
    assert added.returncode == 0, added.stderr
    [peer] = one.api("GET", "/api/v1/peers")["peers"]  # two introduced itself
    assert peer["name"] == "two", peer

    session = ClaudeSession(claude, one)
    ran = session.dir / "approved-by-loopsy"  # what the Bash call creates, once allowed
    try:
        session.start(f"touch {ran}")
        session.wait_for_channel()
        # loopsy-mcp's channel starts at the inbox's tail: only messages that arrive after its
        # first read of node one's inbox are new to it (the test itself never reads that inbox).
        wait_until("loopsy-mcp read node one's inbox", lambda: [
            e for e in one.api("GET", "/api/v1/audit")["entries"]
            if e["method"] == "GET" and e["path"] == "/api/v1/messages/inbox" and e["status"] == 200], 15,
            evidence=session.evidence)

        # 1. A message from two reaches the model as a channel block naming its sender.
        marker = "CHANNEL_MARKER_" + uuid.uuid4().hex[:12]
        sent = two.cli("msg", "send", "one", marker, "--json")
        assert sent.returncode == 0, sent.stderr
        message_id = json.loads(sent.stdout)["messages"][0]["id"]
        blocks = wait_until("the message reached the mock API as a <channel source=\"loopsy\"> block",
                            lambda: channel_blocks(session.requests(), marker), 25, evidence=session.evidence)
        attributes, content = blocks[0]
        assert content == marker
        assert attributes.get("user") == "two", attributes
        assert attributes.get("from_node") == peer["nodeId"], attributes
        assert attributes.get("message_id") == message_id, attributes
        assert attributes.get("type") == "chat", attributes
        assert "source" not in attributes, attributes

        # 2. The mock model answers with a Bash call; Claude Code relays its permission prompt,
        # and loopsy-mcp records it on node one.
        [approval] = wait_until("a pending approval on node one",
                                lambda: one.api("GET", "/api/v1/approvals?state=pending")["approvals"], 25,
                                evidence=session.evidence)
        assert approval["toolName"] == "Bash", approval
        assert str(ran) in approval["inputPreview"], approval
        assert approval["description"] == "Create the channel test marker file", approval
        listed = one.cli("approvals", "--json")
        assert listed.returncode == 0 and approval["id"] in listed.stdout, listed.stdout + listed.stderr
        assert not ran.exists(), "the command ran before anyone answered"

        # 3. Allowed on node one: the verdict reaches Claude Code, and the command runs.
        approved = one.cli("approve", approval["id"])
        assert approved.returncode == 0, approved.stdout + approved.stderr
        wait_until("the approved Bash command ran", ran.exists, 25, evidence=session.evidence)
        results = wait_until("the Bash tool_result reached the mock API", lambda: bash_results(session.requests()), 15,
                             evidence=session.evidence)
        assert not results[0].get("is_error"), results[0]
        verdict = f'notifications/claude/channel/permission: {approval["requestId"]} → allow (matched pending)'
        assert verdict in session.debug(), session.evidence()
        answered = one.api("GET", f"/api/v1/approvals/{approval['id']}")
        assert answered["state"] == "allowed" and answered["answeredBy"] == "local", answered
    finally:
        session.close()
    assert time.monotonic() - started < 90
