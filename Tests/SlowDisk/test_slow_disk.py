"""Pushed files on a disk slow to make data durable, against a real loopsyd.

The destination is a FUSE passthrough (slowfs.py) whose fsync sleeps. A daemon told to stop
while pushed files are being stored answers them (200, the file in place) before it stops;
files still waiting for a store slot after 10 s are removed and refused (503, nothing stored),
so no client is told "retry" for a file that was kept, nor "stored" for one that was not, and
no partial file is left behind.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import slowfs

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LOOPSY_BIN", ROOT / ".build" / "debug")).resolve()


class Node:
    """A loopsyd with a temporary data dir whose transfers are confined to a slow mount."""

    def __init__(self, delay):
        self.dir = Path(tempfile.mkdtemp(prefix="loopsy-slow-"))
        self.backing = self.dir / "backing"
        self.mount = self.dir / "slow"
        self.backing.mkdir()
        self.mount.mkdir()
        self.fs = slowfs.mount(str(self.backing), str(self.mount), delay)
        data = self.dir / "data"
        subprocess.run([str(BIN / "loopsy"), "init", "--no-mcp", "--data-dir", str(data)], check=True,
                       capture_output=True)
        config = (data / "config.yaml").read_text()
        for old, new in {"  enabled: true            # mDNS": "  enabled: false            # mDNS",
                         'allowedPaths: ["~"]': f'allowedPaths: ["{self.mount}"]',
                         "  transfer: 10": "  transfer: 0"}.items():
            assert old in config, f"config template has no line {old!r}"
            config = config.replace(old, new)
        (data / "config.yaml").write_text(config)
        self.key = re.search(r"apiKey: (\w+)", config).group(1)
        self.header = self.dir / "auth"
        self.header.write_text(f"Authorization: Bearer {self.key}\n")
        self.process = subprocess.Popen([str(BIN / "loopsyd"), "--data-dir", str(data), "--port", "0", "--host",
                                         "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.port = int(re.search(r"port (\d+)", self.process.stdout.readline()).group(1))

    def push(self, name, content):
        """Starts `curl` pushing `content` to <mount>/<name>; returns the process."""
        local = self.dir / f"{name}.local"
        local.write_bytes(content)
        return subprocess.Popen(
            ["curl", "-s", "--max-time", "120", "-o", str(self.dir / f"{name}.answer"), "-w", "%{http_code}",
             "-H", f"@{self.header}", "-F", f"file=@{local}",
             f"http://127.0.0.1:{self.port}/api/v1/transfer/push?destPath={self.mount}/{name}"],
            stdout=subprocess.PIPE, text=True)

    def answer(self, name):
        return json.loads((self.dir / f"{name}.answer").read_text())

    def wait_for_fsyncs(self, count, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.fs.fsyncs_started >= count:
                return True
            time.sleep(0.05)
        return False

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        subprocess.run(["fusermount3", "-u", str(self.mount)], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def node(request):
    created = []

    def make(delay):
        created.append(Node(delay))
        return created[-1]

    yield make
    for each in created:
        each.close()


def content(seed, size):
    return hashlib.sha256(str(seed).encode()).digest() * (size // 32)


def test_a_stop_answers_the_file_being_stored(node):
    slow = node(delay=3)
    data = content(1, 2 << 20)
    upload = slow.push("kept.bin", data)
    assert slow.wait_for_fsyncs(1), "the daemon never began to store the file"
    slow.process.send_signal(signal.SIGTERM)
    status, _ = upload.communicate(60)
    assert status == "200", (slow.dir / "kept.bin.answer").read_text()
    assert slow.answer("kept.bin")["sha256"] == hashlib.sha256(data).hexdigest()
    assert slow.process.wait(30) == 0
    assert (slow.mount / "kept.bin").read_bytes() == data
    assert sorted(os.listdir(slow.mount)) == ["kept.bin"]


def test_a_stop_refuses_files_not_begun_and_keeps_none_of_them(node):
    # Two files are stored at a time; a stop waits 10 s for the rest, and these take 14 s.
    slow = node(delay=14)
    files = {f"f{index}.bin": content(index, 256 << 10) for index in range(4)}
    uploads = {name: slow.push(name, data) for name, data in files.items()}
    assert slow.wait_for_fsyncs(2), "the daemon never began to store two files"
    time.sleep(1.5)  # the other two bodies (256 KiB each) have arrived and wait for a slot
    assert slow.fs.fsyncs_started == 2
    slow.process.send_signal(signal.SIGTERM)
    statuses = {name: upload.communicate(90)[0] for name, upload in uploads.items()}
    assert slow.process.wait(30) == 0
    kept = [name for name, status in statuses.items() if status == "200"]
    refused = [name for name, status in statuses.items() if status == "503"]
    assert len(kept) == 2 and len(refused) == 2, statuses
    for name in kept:
        assert (slow.mount / name).read_bytes() == files[name]
    for name in refused:
        error = slow.answer(name)["error"]
        assert error["code"] == "unavailable" and "nothing was stored" in error["message"], error
    # Neither the refused files nor any partial file is left.
    assert sorted(os.listdir(slow.mount)) == sorted(kept)
