"""The web pages in a real browser: Playwright drives Debian's Chromium through Sign in with
Slack (the stand-in's page), the incident list, an incident, its postmortem and a rotation,
on a phone-sized screen."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta

import pytest

from tests.conftest import not_installed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason=not_installed("Chromium"))


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.fail("CI must run the browser tests: chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # As root (CI containers) Chromium refuses to start without --no-sandbox.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_a_phone_signs_in_with_slack_and_reads_incidents_postmortems_and_rotations(web, standin, browser):
    web.command("U0FRANK", "/incident", "declare sev2 Checkout down")
    channel = web.channel_of(1)
    web.command("U0FRANK", "/incident", "note rolled back the deploy", channel=channel)
    web.advance(timedelta(minutes=20))
    web.command("U0FRANK", "/incident", "resolve rollback fixed it", channel=channel)
    web.command("U0FRANK", "/incident", "declare sev1 Search is slow <script>alert(1)</script>")

    # A phone in Tokyo: the pages show frank's own zone (his Slack profile's), not the device's.
    context = browser.new_context(viewport={"width": 390, "height": 844}, timezone_id="Asia/Tokyo",
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(web.url + "/")
    assert page.url.startswith(standin.base_url + "openid/connect/authorize")
    page.get_by_role("link", name="Sign in as frank").click()
    page.wait_for_url(web.url + "/")

    incidents = page.locator("#incidents li")
    assert incidents.count() == 1  # the resolved one is not open
    assert "Search is slow <script>alert(1)</script>" in incidents.first.inner_text()
    assert "payments: frank (amer)" in page.locator("#oncall").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.get_by_role("link", name=re.compile("#2 Search is slow")).click()
    page.wait_for_url(web.url + "/incidents/2")
    # Declared at 15:20 UTC: 08:20 in Los Angeles (PDT), whatever the phone's own zone.
    assert page.locator("#declared").inner_text() == "Tue 10 Mar 2026 08:20 PDT"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.goto(web.url + "/incidents/1")
    assert "rolled back the deploy" in page.locator("#timeline").inner_text()
    page.get_by_role("link", name="Postmortem draft").click()
    page.wait_for_url(web.url + "/postmortems/1")
    assert "rollback fixed it" in page.locator("article").inner_text()

    page.goto(web.url + "/")
    page.locator("#oncall").get_by_role("link", name="payments", exact=True).click()
    page.wait_for_url(web.url + "/rotations/payments")
    first = page.locator("#shifts tr").nth(1).inner_text()
    assert "Tue 10 Mar 2026 08:20 PDT" in first and "frank" in first

    page.get_by_role("button", name="Sign out").click()
    assert "You are signed out." in page.content()
    page.goto(web.url + "/incidents/1")
    assert page.url.startswith(standin.base_url + "openid/connect/authorize")
    assert dialogs == []  # the title's <script> never ran
    context.close()
