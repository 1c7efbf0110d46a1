#!/usr/bin/env python3
"""Drives the dashboard in headless Chromium through ChromeDriver (W3C WebDriver over HTTP,
with `requests`), against a running `sentinel run --serve`.

    dashboard_check.py BASE_URL SCREENSHOT.png

It loads the page while the job is still emitting anomalies, and prints a JSON report:
- the rows the page showed at first, and whether rows arrived afterwards without a reload;
- the rendered rows against the API's first page, once the job has stopped adding anomalies;
- the acknowledgement clicked in the page, as the page and the API then show it.
It exits non-zero, saying why, when a step cannot be done.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import requests

ROWS = 50


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fail(why):
    print(json.dumps({"error": why}))
    sys.exit(1)


class Browser:
    def __init__(self):
        driver = shutil.which("chromedriver")
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        if driver is None or not os.path.exists(chromium):
            fail("chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver; see .ci/run)")
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="sentinel-chromium-")
        self.process = subprocess.Popen(
            [driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(self.base + "/status", timeout=2).json()["value"]["ready"]:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.time() > deadline:
                fail("chromedriver did not become ready")
            time.sleep(0.2)
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1400",
            f"--user-data-dir={self.profile}",
        ]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}}
        answer = requests.post(self.base + "/session", json=caps, timeout=60).json()
        if "sessionId" not in answer.get("value", {}):
            fail(f"no browser session: {answer}")
        self.session = f"{self.base}/session/{answer['value']['sessionId']}"

    def call(self, method, path, body=None):
        answer = requests.request(method, self.session + path, json=body, timeout=30).json()
        value = answer.get("value")
        if isinstance(value, dict) and "error" in value:
            raise RuntimeError(f"{path}: {value['error']}: {value.get('message', '')[:300]}")
        return value

    def run(self, script, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def close(self):
        try:
            requests.delete(self.session, timeout=10)
        except requests.RequestException:
            pass
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)


ROWS_SCRIPT = """
return [...document.querySelectorAll('#anomalies tbody tr')].map(r => ({
  id: r.dataset.anomalyId,
  status: r.querySelector('.status').textContent,
  severity: r.querySelector('.severity').textContent,
}));
"""


def api_page(base):
    return requests.get(f"{base}/api/v1/anomalies", params={"limit": ROWS}, timeout=10).json()


def wait_for(what, check, limit, detail=None):
    deadline = time.time() + limit
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            fail(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))
        time.sleep(0.25)


def main():
    base = sys.argv[1].rstrip("/")
    screenshot = sys.argv[2]
    browser = Browser()
    report = {}
    try:
        browser.call("POST", "/url", {"url": base + "/"})
        first = wait_for("the first rows", lambda: browser.run(ROWS_SCRIPT), 30)
        report["first_rows"] = [r["id"] for r in first]
        report["live_state"] = wait_for(
            "the subscription", lambda: browser.run("return document.getElementById('connection').dataset.state === 'live' && 'live'"), 30
        )

        # Rows arrive while the job runs, with no reload: the live counter moves and new ids appear.
        def arrived():
            live = int(browser.run("return document.getElementById('count-live').textContent"))
            ids = {r["id"] for r in browser.run(ROWS_SCRIPT)}
            new = ids - set(report["first_rows"])
            return (live, sorted(new)) if live > 0 and new else None

        live, new = wait_for("anomalies arriving live", arrived, 120)
        report["live_count"] = live
        report["arrived_ids"] = new
        report["reloaded"] = browser.run("return performance.getEntriesByType('navigation').length") != 1

        # Once the API's first page stops changing, the page shows exactly it, in its order.
        def settled():
            a = [x["id"] for x in api_page(base)["anomalies"]]
            time.sleep(1.5)
            b = [x["id"] for x in api_page(base)["anomalies"]]
            shown = [r["id"] for r in browser.run(ROWS_SCRIPT)]
            return (b, shown) if a == b and shown == b else None

        api_ids, shown = wait_for("the page to match the API", settled, 180)
        report["api_ids"] = api_ids
        report["dom_ids"] = shown
        report["total_shown"] = int(browser.run("return document.getElementById('count-total').textContent"))
        report["api_total"] = api_page(base)["total"]

        # Acknowledge the newest active anomaly by clicking its button. The table re-renders as
        # changes arrive (the job resolves conditions too), so a button found just before a
        # re-render is stale: find it again, as a person would look again.
        target = None
        for _ in range(10):
            rows = browser.run(ROWS_SCRIPT)
            target = next((r for r in rows if r["status"] == "active"), None)
            if target is None:
                fail("no active anomaly to acknowledge")
            try:
                element = browser.call(
                    "POST", "/element",
                    {"using": "css selector", "value": f"tr[data-anomaly-id='{target['id']}'] button.acknowledge"},
                )
                browser.call("POST", f"/element/{next(iter(element.values()))}/click", {})
                break
            except RuntimeError as e:
                if "stale element" not in str(e) and "no such element" not in str(e):
                    raise
                time.sleep(0.2)
        else:
            fail("the acknowledge button kept going stale")
        report["acknowledged_id"] = target["id"]

        # The job may resolve the anomaly's condition right after the click (the run is still
        # replaying): the API's history then holds the acknowledgement before the resolution.
        def acknowledged():
            a = requests.get(f"{base}/api/v1/anomalies/{target['id']}", timeout=10).json()
            shown = {r["id"]: r["status"] for r in browser.run(ROWS_SCRIPT)}
            by_page = [h for h in a.get("history", []) if h["action"] == "acknowledge"]
            return a if by_page and shown.get(target["id"]) == "acknowledged" else None

        def what_the_page_says():
            a = requests.get(f"{base}/api/v1/anomalies/{target['id']}", timeout=10).json()
            message = browser.run("return document.getElementById('message').textContent")
            shown = {r["id"]: r["status"] for r in browser.run(ROWS_SCRIPT)}.get(target["id"])
            return f"API status {a.get('status')}, page status {shown}, page message {message!r}"

        after = wait_for("the acknowledgement", acknowledged, 30, what_the_page_says)
        report["api_status_after"] = after["status"]
        report["api_history_after"] = [[h["action"], h["by"]] for h in after["history"]]
        report["acknowledged_by"] = after["acknowledged_by"]
        report["dom_status_after"] = {r["id"]: r["status"] for r in browser.run(ROWS_SCRIPT)}[target["id"]]
        report["message"] = browser.run("return document.getElementById('message').textContent")
        png = browser.call("GET", "/screenshot")
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(png))
    except RuntimeError as e:
        fail(str(e))
    finally:
        browser.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
