"""Real loopsyd daemons and the real loopsy-mcp binary for the MCP tests.

Binaries come from $LOOPSY_BIN (default: the repository's .build/debug). Every node gets a
temporary data dir and an ephemeral port; nothing here mocks the daemon.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LOOPSY_BIN", ROOT / ".build" / "debug")).resolve()
LAB = ROOT / "Tests" / "Support" / "lab.sh"


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Node:
    """A loopsyd with its own data dir, optionally inside a lab namespace (`launcher`)."""

    def __init__(self, name, tls=False, launcher=None, edit=None):
        self.dir = Path(tempfile.mkdtemp(prefix="loopsy-mcp-"))
        # Files the tests move live outside the data dir: transfers never reach a data dir.
        self.files = Path(tempfile.mkdtemp(prefix="loopsy-mcp-files-"))
        self.launcher = launcher or []
        self.process = None
        self.port = 0
        subprocess.run([str(BIN / "loopsy"), "init", "--no-mcp", "--data-dir", str(self.dir)], check=True,
                       capture_output=True)
        config = (self.dir / "config.yaml").read_text()
        config = config.replace("  # hostname: my-laptop", f"  hostname: {name}")
        config = config.replace("  enabled: true            # mDNS", "  enabled: false            # mDNS")
        config = config.replace('allowedPaths: ["~"]', f'allowedPaths: ["{self.files}", "/tmp"]')
        if not tls:  # `loopsy init` turns tls.enabled on
            config = config.replace("  enabled: true            # serve peers", "  enabled: false           # serve peers")
        if edit:
            config = edit(config)
        (self.dir / "config.yaml").write_text(config)
        os.chmod(self.dir / "config.yaml", 0o600)

    @property
    def key(self):
        return re.search(r"apiKey: (\w+)", (self.dir / "config.yaml").read_text()).group(1)

    @property
    def env(self):
        return {**os.environ, "LOOPSY_DATA_DIR": str(self.dir)}

    def start(self, host="127.0.0.1", port=0, path_prefix=None):
        env = dict(os.environ)
        if path_prefix:
            env["PATH"] = f"{path_prefix}:{env['PATH']}"
        self.process = subprocess.Popen(
            self.launcher + [str(BIN / "loopsyd"), "--data-dir", str(self.dir), "--port", str(port), "--host", host],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        line = self.process.stdout.readline()
        match = re.search(r"port (\d+)", line)
        assert match, f"loopsyd did not start: {line!r}"
        self.port = int(match.group(1))
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def cli(self, *args, stdin=None):
        return subprocess.run(self.launcher + [str(BIN / "loopsy"), *args], env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=120)

    def api(self, method, path, body=None):
        """The daemon's REST API through curl (inside the node's namespace when it has one)."""
        args = ["curl", "-s", "-X", method, "-H", f"Authorization: Bearer {self.key}",
                f"http://127.0.0.1:{self.port}{path}"]
        if body is not None:
            args[4:4] = ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        out = subprocess.run(self.launcher + args, capture_output=True, text=True, timeout=30).stdout
        return json.loads(out)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.files, ignore_errors=True)

    def server_parameters(self):
        command = self.launcher + [str(BIN / "loopsy-mcp")]
        return StdioServerParameters(command=command[0], args=command[1:], env=self.env)


@pytest.fixture
def nodes():
    made = []

    def make(*args, **kwargs):
        node = Node(*args, **kwargs)
        made.append(node)
        return node

    yield make
    for node in made:
        node.cleanup()


@asynccontextmanager
async def mcp_session(node):
    async with stdio_client(node.server_parameters()) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


@pytest.fixture
def lab():
    check = subprocess.run(["bash", str(LAB), "check"], capture_output=True, text=True)
    assert check.returncode == 0, f"multi-host tests need network namespaces (root, iproute2, avahi): {check.stderr}"
    name = "m" + uuid.uuid4().hex[:5]
    up = subprocess.run(["bash", str(LAB), "up", name, "2"], capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    yield name
    subprocess.run(["bash", str(LAB), "down", name], capture_output=True)


def lab_launcher(name, host):
    return ["bash", str(LAB), "exec", name, str(host)]


class RawServer:
    """loopsy-mcp driven by hand, line by line, to test what the SDK client hides."""

    def __init__(self, node):
        self.process = subprocess.Popen([str(BIN / "loopsy-mcp")], env=node.env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def send(self, message):
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def initialize(self):
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
        self.wait_for(lambda m: m.get("id") == 0)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def messages(self):
        return [json.loads(line) for line in list(self.lines)]

    def wait_for(self, predicate, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for message in self.messages():
                if predicate(message):
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no matching message in {self.messages()}")
