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
        wait_for(lambda: b"help centre is live" in (data_dir / "stack.log").read_bytes(), 300,
                 "the demo knowledge base")
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
        admin.goto(site + "/knowledge/")
        admin.locator("#knowledge-bases a").first.click()
        admin.fill("#id_question", "do u ship to toronto?")
        admin.locator("#ask-form button[type=submit]").click()
        expect(admin.locator("#ask-answer")).to_be_visible(timeout=60_000)
        admin.locator("#ask").scroll_into_view_if_needed()
        admin.screenshot(path=str(OUT / "knowledge.png"))
        admin.fill("#id_questions", "\n".join([
            "how much is express shipping", "can i return shoes i wore once?",
            "Which courier do you use, UPS or FedEx?", "do you have a student discount?",
            "Is there a buy now, pay later option?", "thanks!"]))
        admin.locator("#check-form button[type=submit]").click()
        expect(admin.locator("#check-questions")).to_be_visible(timeout=60_000)
        admin.locator("#check-result").screenshot(path=str(OUT / "knowledge-check.png"))
        admin.goto(site + "/deployments/acme-support/")
        admin.fill("#pg-input", "how much is express shipping?")
        admin.click("#pg-send")
        expect(admin.locator(".pg-grounding")).to_be_visible(timeout=60_000)
        admin.screenshot(path=str(OUT / "playground.png"))

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
        expect(panel.locator(".gs-sources").first).to_be_visible()
        panel.locator("#gs-input").fill("Do you have a student discount?")
        panel.locator("#gs-input").press("Enter")
        expect(panel.locator(".gs-msg.gs-bot[data-seq]")).to_have_count(2, timeout=180_000)
        expect(panel.locator(".gs-msg.gs-system").last).to_be_visible(timeout=60_000)  # the handoff notice
        customer.wait_for_timeout(800)  # past the new messages' fade-in
        customer.screenshot(path=str(OUT / "widget.png"))

        agent = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
        agent.set_default_timeout(60_000)
        login(agent, site, "agent@acme-shoes.example", logins["agent@acme-shoes.example"])
        agent.goto(site + "/console/")
        agent.locator("#conversation-table a").first.click()
        agent.click("#take-over")
        agent.fill("#reply-text", "Hi, I'm Sam from Acme. We don't run a student discount, but new members of "
                                  "Acme Steps get points on every order.")
        agent.click("#reply-send")
        expect(agent.locator("#transcript .tmsg-agent")).to_have_count(1)
        agent.locator("#transcript details.tknowledge").first.locator("summary").click()
        agent.evaluate("window.scrollTo(0, 0)")
        agent.screenshot(path=str(OUT / "console.png"))
        expect(panel.locator(".gs-msg.gs-agent")).to_have_count(1)
        customer.screenshot(path=str(OUT / "widget-agent.png"))
        admin.goto(site + "/console/insights/")
        expect(admin.locator("#unknown-questions-list")).to_be_visible()
        admin.locator("#unknown-questions").screenshot(path=str(OUT / "review-unknown.png"))
        browser.close()
    for path in sorted(OUT.glob("*.png")):
        print(path.relative_to(REPO))


if __name__ == "__main__":
    main()
