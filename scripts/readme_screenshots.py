"""Take the README's screenshots from a real first run: `manage.py runstack` with the demo (bundled
models, the demo sentiment model trained on first start), driven by Debian's chromium.

    .venv/bin/python scripts/readme_screenshots.py      # writes docs/screenshots/*.png (~5 minutes)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "screenshots"
sys.path.insert(0, str(REPO))

from bench.stack import bench_environment, free_port  # noqa: E402


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise TimeoutError(what)


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="gptstore-shots-"))
    port, demo_port = free_port(), free_port()
    env = bench_environment(data_dir, GPT_STORE_DEMO="1", DEBUG="1", LOG_LEVEL="WARNING")
    env.pop("SECRET_KEY")
    log = open(data_dir / "stack.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "manage.py", "runstack", "--port", str(port), "--demo-port",
                                str(demo_port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    site = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: b"Demo sentiment model deployed" in (data_dir / "stack.log").read_bytes(), 900,
                 "the demo sentiment model")
        logins = json.loads((data_dir / "demo-credentials.json").read_text())
        shoot(site, f"http://localhost:{demo_port}", logins)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(60)


def login(page, site: str, email: str, password: str) -> None:
    page.goto(site + "/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def shoot(site: str, shop: str, logins: dict) -> None:
    from playwright.sync_api import expect, sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        admin = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
        admin.set_default_timeout(120_000)
        admin.goto(site + "/")
        admin.screenshot(path=str(OUT / "storefront.png"))
        login(admin, site, "admin@acme-shoes.example", logins["admin@acme-shoes.example"])
        admin.goto(site + "/finetune/")
        admin.locator("#job-list a").first.click()
        admin.screenshot(path=str(OUT / "job.png"), full_page=False)

        customer = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
        customer.set_default_timeout(180_000)
        customer.goto(shop)
        customer.locator("button.gs-launcher").first.click()
        panel = customer.frame_locator("iframe").first
        expect(panel.locator("#gs-input")).to_be_focused(timeout=60_000)  # the panel heard "open" and is listening
        panel.locator("#gs-input").click()
        panel.locator("#gs-input").fill("Hi! How long do I have to return shoes?")
        panel.locator("#gs-input").press("Enter")
        try:
            expect(panel.locator(".gs-msg.gs-bot[data-seq]")).to_have_count(1, timeout=180_000)
        except AssertionError:
            customer.screenshot(path=str(OUT / "failed-widget.png"))  # what the customer saw, for the report
            raise
        customer.screenshot(path=str(OUT / "widget.png"))
        panel.locator("#gs-input").fill("This is ridiculous, my parcel is two weeks late and nobody answers!")
        panel.locator("#gs-input").press("Enter")
        customer.wait_for_timeout(8000)

        agent = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
        agent.set_default_timeout(60_000)
        login(agent, site, "agent@acme-shoes.example", logins["agent@acme-shoes.example"])
        agent.goto(site + "/console/")
        agent.locator("#conversation-table a").first.click()
        agent.click("#take-over")
        agent.fill("#reply-text", "Hi, I'm Sam from Acme. So sorry! Let me check your parcel right now.")
        agent.click("#reply-send")
        agent.wait_for_timeout(1500)
        agent.evaluate("window.scrollTo(0, 0)")
        agent.screenshot(path=str(OUT / "console.png"))
        customer.wait_for_timeout(1500)
        customer.screenshot(path=str(OUT / "widget-agent.png"))
        browser.close()
    for path in sorted(OUT.glob("*.png")):
        print(path.relative_to(REPO))


if __name__ == "__main__":
    main()
