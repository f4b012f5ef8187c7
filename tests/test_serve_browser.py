"""The web page end to end in headless Chromium: search, build a history, recommend, read the answer.

Needs Debian's ``chromium`` (``apt-get install -y chromium``; ``.ci/run`` installs it) and the ``playwright``
package (a test extra); skipped where either is absent, but failed under ``CI=true``, where both are installed.
Never ``playwright install``: it would download a browser.
"""

from __future__ import annotations

import re
import shutil
from types import ModuleType

import pytest
from helpers import skip_or_fail
from serve_helpers import LiveServer, make_tiny_run

from pauserec.serve import create_app, load_recommender


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        skip_or_fail("chromium is not installed (apt-get install -y chromium)", "chromium")
    return path


@pytest.fixture(scope="module")
def sync_api() -> ModuleType:
    try:
        from playwright import sync_api
    except ImportError:
        skip_or_fail("the playwright package is not installed (pip install -e '.[test]')", "playwright")
    return sync_api


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    rec = load_recommender(make_tiny_run(tmp_path_factory.mktemp("browser"), arm="pause", pause_tokens=2))
    with LiveServer(create_app(rec)) as s:
        yield s


@pytest.fixture(scope="module")
def page(chromium, sync_api, server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            pg = browser.new_page()
            pg.set_default_timeout(15_000)
            pg.goto(server.url + "/")
            yield pg
        finally:
            browser.close()


def test_search_build_history_and_recommend(page, sync_api):
    expect = sync_api.expect
    expect(page.locator("#model")).to_contain_text("arm pause")
    page.fill("#search", "number 1")
    results = page.locator("#search-results li")
    expect(results).to_have_count(11)  # "Item number 1" and 10..19
    page.locator("#search-results li[data-item-id='i12'] button").click()
    page.locator("#search-results li[data-item-id='i1'] button").click()
    expect(page.locator("#history li")).to_have_count(2)
    expect(page.locator("#history li").first).to_contain_text("Item number 12")
    expect(page.locator("#history-empty")).to_be_hidden()

    page.fill("#k", "5")
    page.click("#recommend")
    rows = page.locator("#recs tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.first.locator("td").nth(1)).to_have_text(re.compile(r"^Item number \d+$"))
    score = float(rows.first.locator("td").nth(2).inner_text())
    assert score < 0  # a log-probability
    expect(page.locator("#latency")).to_have_text(re.compile(r"latency \d+ ms"))
    expect(page.locator("#pauses-used")).to_have_text("pauses used: 2")
    expect(page.locator("#flag")).to_have_count(0)

    page.fill("#pauses", "0")
    page.click("#recommend")
    expect(page.locator("#pauses-used")).to_have_text("pauses used: 0")


def test_cold_start_and_errors_are_shown(page, sync_api):
    expect = sync_api.expect
    page.click("#clear")
    expect(page.locator("#history li")).to_have_count(0)
    page.fill("#pauses", "")
    page.click("#recommend")
    expect(page.locator("#flag")).to_contain_text("cold start")
    expect(page.locator("#recs tbody tr")).to_have_count(5)

    page.fill("#search", "number 3")
    page.locator("#search-results li[data-item-id='i3'] button").click()
    page.fill("#pauses", "999")
    page.click("#recommend")
    expect(page.locator("#error")).to_contain_text("pauses must be between 0 and 64")
    expect(page.locator("#recs tbody tr")).to_have_count(0)
    page.fill("#pauses", "")
    page.click("#recommend")  # the service answers again after the bad request
    expect(page.locator("#recs tbody tr")).to_have_count(5)
    expect(page.locator("#error")).to_have_text("")
