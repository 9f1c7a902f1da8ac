"""Real daemons, the real `loopsy dashboard`, and Debian's chromium driven by Selenium.

Binaries come from $LOOPSY_BIN (default: the repository's .build/debug). Each test gets a
temporary main node plus `loopsy session` nodes, on ephemeral or free ports; the fake `claude`
(Tests/Support/fake-claude) is on the daemons' PATH so AI tasks run for real through the hook.
Screenshots go to $LOOPSY_ARTIFACTS (default .build/test-artifacts/dashboard).
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LOOPSY_BIN", ROOT / ".build" / "debug")).resolve()
FAKE_CLAUDE = ROOT / "Tests" / "Support" / "fake-claude"
ARTIFACTS = Path(os.environ.get("LOOPSY_ARTIFACTS", ROOT / ".build" / "test-artifacts" / "dashboard"))


class Fleet:
    """A main node (loopsyd on an ephemeral port) and its sessions, all in one temp dir."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="loopsy-dash-")) / "main"
        self.env = {**os.environ, "LOOPSY_DATA_DIR": str(self.dir), "PATH": f"{FAKE_CLAUDE}:{os.environ['PATH']}"}
        self.run("init", "--no-mcp")
        config = (self.dir / "config.yaml").read_text()
        config = config.replace("  # hostname: my-laptop", "  hostname: dash-main")
        config = config.replace("  enabled: true            # mDNS", "  enabled: false            # mDNS")
        (self.dir / "config.yaml").write_text(config)
        os.chmod(self.dir / "config.yaml", 0o600)
        self.run("start", "--port", "0")
        self.port = int((self.dir / "daemon.port").read_text())
        self.gateway = None

    def run(self, *args, check=True, timeout=120):
        done = subprocess.run([str(BIN / "loopsy"), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check:
            assert done.returncode == 0, f"loopsy {' '.join(args)}: {done.stderr}"
        return done

    @property
    def key(self):
        return re.search(r"apiKey: (\w+)", (self.dir / "config.yaml").read_text()).group(1)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def start_gateway(self):
        """`loopsy dashboard -p 0`; returns its one-time login link."""
        self.gateway = subprocess.Popen([str(BIN / "loopsy"), "dashboard", "-p", "0"], env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(10):
            line = self.gateway.stdout.readline()
            match = re.search(r"(http://127\.0\.0\.1:\d+/dashboard/#login=[0-9a-f]+)", line)
            if match:
                return match.group(1)
        raise AssertionError("loopsy dashboard printed no link: " + self.gateway.stderr.read())

    def cleanup(self):
        if self.gateway and self.gateway.poll() is None:
            self.gateway.kill()
            self.gateway.wait(10)
        self.run("session", "stop-all", check=False)
        self.run("stop", check=False)
        shutil.rmtree(self.dir.parent, ignore_errors=True)


@pytest.fixture
def fleet():
    made = Fleet()
    yield made
    made.cleanup()


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait(driver, condition, timeout=20, message=""):
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=[StaleElementReferenceException]).until(lambda d: condition(d), message)


def screenshot(driver, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 1000, f"screenshot {path} is empty"
    return path


def settle(seconds=0.3):
    time.sleep(seconds)
