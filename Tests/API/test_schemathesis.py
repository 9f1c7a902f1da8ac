"""schemathesis (every check, every operation, fixed seed) against a real loopsyd.

The daemon gets a temporary data dir, an ephemeral loopback port, no mDNS, no rate limits (a
429 is not what is under test here), an execution allowlist of harmless programs, file
transfers confined to a scratch directory, and the fake `claude` of the AI-task tests. Set SCHEMATHESIS_MAX_EXAMPLES for a longer run.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LOOPSY_BIN", ROOT / ".build" / "debug")).resolve()
HERE = Path(__file__).resolve().parent


def start_daemon(directory):
    subprocess.run([str(BIN / "loopsy"), "init", "--no-mcp", "--data-dir", str(directory)], check=True,
                   capture_output=True)
    config = (directory / "config.yaml").read_text()
    scratch = directory / "scratch"
    scratch.mkdir()
    replacements = {
        "  enabled: true            # mDNS": "  enabled: false            # mDNS",
        'allowedPaths: ["~"]': f'allowedPaths: ["{scratch}"]',
        "  # allowlist: [git, ls, cat]": "  allowlist: [echo, true]",
        "  execute: 30": "  execute: 0", "  transfer: 10": "  transfer: 0", "  context: 60": "  context: 0",
        "  pairing: 10 ": "  pairing: 0 ", "  claudePath: claude": f"  claudePath: {ROOT}/Tests/Support/fake-claude/claude",
    }
    for old, new in replacements.items():
        assert old in config, f"config template has no line {old!r}"
        config = config.replace(old, new)
    (directory / "config.yaml").write_text(config)
    os.chmod(directory / "config.yaml", 0o600)
    process = subprocess.Popen([str(BIN / "loopsyd"), "--data-dir", str(directory), "--port", "0", "--host",
                                "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(re.search(r"port (\d+)", process.stdout.readline()).group(1))
    key = re.search(r"apiKey: (\w+)", config).group(1)
    return process, port, key


def test_schemathesis_finds_nothing():
    directory = Path(tempfile.mkdtemp(prefix="loopsy-st-"))
    process, port, key = start_daemon(directory)
    try:
        command = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(HERE / "schemathesis.toml"),
                   "run", f"http://127.0.0.1:{port}/api/v1/openapi.json", "--url", f"http://127.0.0.1:{port}",
                   "-H", f"Authorization: Bearer {key}", "--no-color"]
        if os.environ.get("SCHEMATHESIS_MAX_EXAMPLES"):
            command += ["--max-examples", os.environ["SCHEMATHESIS_MAX_EXAMPLES"]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1500, cwd=directory)
        report = done.stdout + done.stderr
        (ROOT / ".build" / "test-artifacts").mkdir(parents=True, exist_ok=True)
        (ROOT / ".build" / "test-artifacts" / "schemathesis.txt").write_text(report.replace(key, "<api key>"))
        assert done.returncode == 0, report[-6000:].replace(key, "<api key>")
        assert re.search(r"\d+ passed", report), report[-2000:]
        # The daemon is still up and answering after all of it.
        health = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/api/v1/health"], capture_output=True)
        assert health.returncode == 0
    finally:
        process.kill()
        process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)
