"""The dashboard in a real browser against real daemons: log in, every page shows real data,
one action per page works, log out. Screenshots of each page are saved as artifacts."""
import json
import subprocess

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import screenshot, settle, wait


def retrying(action, attempts=10):
    """Live updates re-render tables; an element found a moment ago may be replaced."""
    for attempt in range(attempts):
        try:
            return action()
        except StaleElementReferenceException:
            if attempt == attempts - 1:
                raise
            settle(0.2)


def click(driver, by, selector):
    retrying(lambda: driver.find_element(by, selector).click())


def choose(driver, select_id, text=None, matching=None):
    """Selects the option with this text, or the first whose text contains `matching`."""
    def pick():
        select = Select(driver.find_element(By.ID, select_id))
        label = text or next(o.text for o in select.options if all(m in o.text for m in matching))
        select.select_by_visible_text(label)
    retrying(pick)


def visible(driver, element_id):
    return driver.find_element(By.ID, element_id).is_displayed()


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def go(driver, page):
    click(driver, By.CSS_SELECTOR, f'nav a[data-page="{page}"]')
    wait(driver, lambda d: visible(d, "page-" + page), message=f"page {page} did not open")


def fill(driver, element_id, value):
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


def rows(driver, table_id):
    """Row texts, read in one step (live updates re-render tables under the test's feet)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#' + arguments[0] + ' tbody tr')].map(r => r.innerText)", table_id)


def names(driver, table_id):
    return driver.execute_script(
        "return [...document.querySelectorAll('#' + arguments[0] + ' tbody tr td:first-child')].map(c => c.innerText)",
        table_id)


def api(fleet, method, path, port=None, key=None, body=None):
    args = ["curl", "-s", "-X", method, "-H", f"Authorization: Bearer {key or fleet.key}",
            f"http://127.0.0.1:{port or fleet.port}{path}"]
    if body is not None:
        args[4:4] = ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    return json.loads(subprocess.run(args, capture_output=True, text=True, timeout=30).stdout)


def fetch_status(driver, path):
    """What the page's own origin gets for `path` now (the cookie goes along)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => done(r.status), e => done(String(e)));", path)


def test_standalone_dashboard_drives_every_local_node(fleet, browser):
    fleet.run("session", "start", "alpha")
    link = fleet.start_gateway()

    # The one-time link logs in, and leaves the address bar at once.
    browser.get(link)
    wait(browser, lambda d: visible(d, "app"), message="the link did not log in")
    assert "login=" not in browser.current_url
    cookie = next(c for c in browser.get_cookies() if c["name"].startswith("loopsy_dashboard_"))
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # Overview: both local nodes with their live status, and the peers they know.
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#overview-nodes .card")) == 2
         and "dash-main" in text(d, "overview-nodes") and "alpha" in text(d, "overview-nodes")
         and "online" in text(d, "overview-nodes"), message="overview did not show both nodes")
    wait(browser, lambda d: any("alpha" in row for row in rows(d, "overview-peers")))
    assert "1 online of 1" in text(browser, "overview-nodes")
    screenshot(browser, "overview")

    # Peers: each machine once, although both local nodes know each other.
    go(browser, "peers")
    wait(browser, lambda d: len(rows(d, "peers-table")) == 2 and "online" in text(d, "peers-table"))
    peer_names = names(browser, "peers-table")
    assert len(peer_names) == 2 and "dash-main" in peer_names and any(name.endswith("alpha") for name in peer_names)
    screenshot(browser, "peers")

    # Context: set a key with a TTL through the form; the daemon has it; the prefix filter finds it.
    go(browser, "context")
    fill(browser, "context-key", "dash:greeting")
    fill(browser, "context-value", "hello from chromium")
    fill(browser, "context-ttl", "600")
    click(browser, By.CSS_SELECTOR, "#context-form button[type=submit]")
    wait(browser, lambda d: any("dash:greeting" in row for row in rows(d, "context-table")))
    entry = api(fleet, "GET", "/api/v1/context/dash%3Agreeting")
    assert entry["value"] == "hello from chromium" and entry["ttl"] == 600
    row = next(row for row in rows(browser, "context-table") if "dash:greeting" in row)
    assert "min" in row or " s" in row, f"TTL left not shown: {row}"
    # Written from the dashboard, the key is this node's: its id, not a cut caller name.
    main_id = api(fleet, "GET", "/api/v1/health")["nodeId"]
    assert main_id[:12] in row and "local (d" not in row, row
    # Locks held on the node show with their holder and fencing token.
    lock = api(fleet, "POST", "/api/v1/locks/deploy", body={"holder": "agent on alpha", "ttl": 600})
    wait(browser, lambda d: any("deploy" in row and "agent on alpha" in row and str(lock["token"]) in row
                                for row in rows(d, "locks-table")), message="the lock never showed")
    api(fleet, "DELETE", f"/api/v1/locks/deploy?token={lock['token']}")
    wait(browser, lambda d: any("No locks are held" in row for row in rows(d, "locks-table")))
    # An error message goes with the page it belongs to.
    fill(browser, "context-key", "dash:bad")
    fill(browser, "context-value", "x")
    fill(browser, "context-ttl", "0")
    click(browser, By.CSS_SELECTOR, "#context-form button[type=submit]")
    wait(browser, lambda d: "show" in d.find_element(By.ID, "toast").get_attribute("class"), message="no error shown")
    go(browser, "peers")
    wait(browser, lambda d: "show" not in d.find_element(By.ID, "toast").get_attribute("class"),
         message="the error stayed over the next page")
    go(browser, "context")
    fill(browser, "context-ttl", "")
    api(fleet, "PUT", "/api/v1/context/other", body={"value": "not matching"})
    wait(browser, lambda d: any("other" in row for row in rows(d, "context-table")), message="no live update")
    fill(browser, "context-prefix", "dash:")
    click(browser, By.CSS_SELECTOR, "#context-filter button")
    wait(browser, lambda d: not any("not matching" in row for row in rows(d, "context-table")))
    assert any("dash:greeting" in row for row in rows(browser, "context-table"))
    screenshot(browser, "context")

    # Messages: main writes to alpha; alpha's inbox has it; alpha acks; main's outbox says acked.
    go(browser, "messages")
    wait(browser, lambda d: len(Select(d.find_element(By.ID, "message-to")).options) >= 1)
    retrying(lambda: Select(browser.find_element(By.ID, "message-to")).select_by_index(0))
    fill(browser, "message-body", "hi alpha, from the dashboard")
    click(browser, By.CSS_SELECTOR, "#message-form button[type=submit]")
    wait(browser, lambda d: any("hi alpha" in row and "delivered" in row for row in rows(d, "outbox-table")),
         message="the outbox never said delivered")
    choose(browser, "node-select", "alpha")
    wait(browser, lambda d: any("hi alpha" in row for row in rows(d, "inbox-table")))
    # Unread: it can be marked read, then acked.
    click(browser, By.CSS_SELECTOR, "#inbox-table button[aria-label^='Mark read']")
    wait(browser, lambda d: any("hi alpha" in row and "read" in row and "unread" not in row
                                for row in rows(d, "inbox-table")))
    click(browser, By.CSS_SELECTOR, "#inbox-table button[aria-label^='Acknowledge']")
    wait(browser, lambda d: any("hi alpha" in row and "acked" in row for row in rows(d, "inbox-table")))
    screenshot(browser, "messages-alpha")
    choose(browser, "node-select", "main")
    wait(browser, lambda d: any("hi alpha" in row and "acked" in row for row in rows(d, "outbox-table")),
         message="the ack never reached main's outbox")
    screenshot(browser, "messages")

    # AI tasks: dispatch to main; the fake claude asks to use Bash; approve it; it completes.
    go(browser, "tasks")
    wait(browser, lambda d: len(Select(d.find_element(By.ID, "task-target")).options) >= 2)
    choose(browser, "task-target", "main (local)")
    fill(browser, "task-prompt", "please use-tool and report")
    click(browser, By.CSS_SELECTOR, "#task-form button[type=submit]")
    wait(browser, lambda d: "Claude asks to use Bash" in text(d, "task-approvals"),
         message="the permission request never showed")
    assert "echo hi" in text(browser, "task-approvals")
    screenshot(browser, "tasks-approval")
    click(browser, By.XPATH, "//div[@id='task-approvals']//button[text()='Approve']")
    wait(browser, lambda d: "The command ran." in text(d, "task-stream"), message="the task never ran the tool")
    wait(browser, lambda d: "completed" in text(d, "task-state"))
    wait(browser, lambda d: any("completed" in row for row in rows(d, "tasks-table")))
    screenshot(browser, "tasks")

    # Terminal: a command on the alpha session, streamed.
    go(browser, "terminal")
    wait(browser, lambda d: len(Select(d.find_element(By.ID, "terminal-target")).options) >= 2)
    choose(browser, "terminal-target", "alpha (local)")
    fill(browser, "terminal-command", "echo 'hello from the terminal'")
    click(browser, By.ID, "terminal-run")
    wait(browser, lambda d: "hello from the terminal" in text(d, "terminal-output")
         and "exit code 0" in text(d, "terminal-status"), message="the command output never arrived")
    screenshot(browser, "terminal")

    # A phone-sized screen: nothing wider than the screen, every page link reachable.
    browser.set_window_size(390, 844)
    go(browser, "overview")
    settle()
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 392
    assert all(link.is_displayed() for link in browser.find_elements(By.CSS_SELECTOR, "nav a"))
    screenshot(browser, "overview-phone")
    # Tables are cards on a phone: a peer's Remove button and a message's State are on the screen.
    def on_screen(element):
        left = browser.execute_script("return arguments[0].getBoundingClientRect().right", element)
        return left <= 392
    go(browser, "peers")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#peers-table button.danger")) >= 1)
    settle()
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 392
    assert all(on_screen(button) for button in browser.find_elements(By.CSS_SELECTOR, "#peers-table button.danger"))
    screenshot(browser, "peers-phone")
    go(browser, "messages")
    wait(browser, lambda d: any("hi alpha" in row for row in rows(d, "outbox-table")))
    settle()
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 392
    assert all(on_screen(cell) for cell in browser.find_elements(By.CSS_SELECTOR, "#outbox-table td"))
    choose(browser, "node-select", "alpha")
    wait(browser, lambda d: any("hi alpha" in row for row in rows(d, "inbox-table")))
    settle()
    assert all(on_screen(cell) for cell in browser.find_elements(By.CSS_SELECTOR, "#inbox-table td"))
    screenshot(browser, "messages-phone")
    choose(browser, "node-select", "main")
    browser.set_window_size(1280, 1000)

    # Log out: the login form is back, and the old session opens nothing.
    click(browser, By.ID, "logout")
    wait(browser, lambda d: visible(d, "login") and not visible(d, "app"))
    assert fetch_status(browser, "/dashboard/api/session") == 401
    assert fetch_status(browser, "/nodes/main/api/v1/status") == 401
    screenshot(browser, "logged-out")


def test_daemon_dashboard_logs_in_with_the_key_and_runs_commands_on_a_peer(fleet, browser):
    fleet.run("session", "start", "beta")
    browser.get(fleet.base + "/dashboard/")
    wait(browser, lambda d: visible(d, "login"))
    screenshot(browser, "login")

    # A wrong key is refused with a message; the right one logs in.
    fill(browser, "login-key", "0" * 64)
    click(browser, By.CSS_SELECTOR, "#login-form button")
    wait(browser, lambda d: "not this node's API key" in text(d, "login-error"))
    fill(browser, "login-key", fleet.key)
    click(browser, By.CSS_SELECTOR, "#login-form button")
    wait(browser, lambda d: visible(d, "app") and "dash-main" in text(d, "overview-nodes"))
    cookies = [c for c in browser.get_cookies() if c["name"].startswith("loopsy_")]
    assert cookies and all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies)
    assert fleet.key not in json.dumps(browser.get_cookies())
    # The key is not kept anywhere the page's script can read; the cookie is invisible to it.
    readable = browser.execute_script(
        "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie")
    assert fleet.key not in readable and "loopsy_" not in readable

    # A reload keeps the session (the page asks for its CSRF token again).
    browser.refresh()
    wait(browser, lambda d: visible(d, "app") and "dash-main" in text(d, "overview-nodes"))
    screenshot(browser, "daemon-overview")

    # The Terminal reaches the peer through this daemon's forwarding.
    go(browser, "terminal")
    wait(browser, lambda d: any("(peer" in o.text for o in Select(d.find_element(By.ID, "terminal-target")).options))
    choose(browser, "terminal-target", matching=["beta", "(peer"])
    fill(browser, "terminal-command", "uname -n")
    click(browser, By.ID, "terminal-run")
    wait(browser, lambda d: "exit code 0" in text(d, "terminal-status"), message="the relayed command never finished")
    assert text(browser, "terminal-output").strip().splitlines()[-1] == subprocess.run(
        ["uname", "-n"], capture_output=True, text=True).stdout.strip()
    screenshot(browser, "daemon-terminal")

    click(browser, By.ID, "logout")
    wait(browser, lambda d: visible(d, "login"))
    assert fetch_status(browser, "/api/v1/status") == 401
