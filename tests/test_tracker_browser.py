"""The tracker page in a real browser: Debian's headless Chromium driven by Selenium
(chromium and chromium-driver, installed by tests/install-servers), against
``habitat-http serve`` holding three real flights (tests/tracker_flights.py)."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from habitat_http.parser.checksums import crc16_ccitt

from .tracker_flights import FLIGHTS, Flights, replay_flights

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: The page refreshes every 10 s; a new string must show within two refreshes and
#: the archive's delivery.
REFRESH_WAIT = 40
#: How many refreshes the page has done since it was loaded.
REFRESHES = "return window.tracker.refreshes"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium and chromium-driver are missing: run tests/install-servers",
)


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flights]:
    yield from replay_flights(tmp_path_factory.mktemp("flights"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.add_argument("--headless=new")
    options.add_argument("--disable-gpu")
    options.add_argument("--disable-dev-shm-usage")
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root with it
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(driver: Any, condition: Any, timeout: float = 20) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def listed(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#payloads tbody tr[data-callsign]")
    return [r.get_attribute("data-callsign") for r in rows]


def polyline_points(driver: Any, element_id: str) -> int:
    from selenium.webdriver.common.by import By

    points = driver.find_element(By.ID, element_id).get_attribute("points") or ""
    return len(points.split())


def test_the_page_lists_the_flights_and_draws_the_selected_track(
    browser: Any, flights: Flights, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(flights.tracker + "/")
    wait_for(browser, lambda d: set(FLIGHTS) <= set(listed(d)))
    assert browser.find_element(By.ID, "selected").is_displayed() is False
    # The listeners show, with the strings each uploaded.
    wait_for(browser, lambda d: "HA5MRC" in d.find_element(By.ID, "listeners").text)

    for flight in ("WG3", "SP"):
        row = browser.find_element(By.CSS_SELECTOR, f'#payloads tr[data-callsign="{flight}"]')
        before = browser.execute_script(REFRESHES)
        row.click()
        wait_for(
            browser, lambda d, n=before: d.execute_script("return window.tracker.refreshes") > n
        )
        assert browser.current_url.endswith(f"/tracker/?payload={flight}")
        assert browser.find_element(By.ID, "selected-name").text == flight
        track = flights.archive.track(flight, limit=5000)
        assert polyline_points(browser, "track-line") == len(track)
        assert polyline_points(browser, "altitude-line") == len(track)
        shown = browser.find_element(By.ID, "latest-altitude").text
        assert shown.endswith(" m")
        assert float(shown.removesuffix(" m")) == flights.archive.recent(flight, 1)[0]["altitude"]
        assert browser.find_element(By.ID, "track-scale").text.endswith("km")
        receivers = browser.find_elements(By.CSS_SELECTOR, "#receivers tbody tr")
        assert len(receivers) == len(track[-1]["receivers"])
    browser.set_window_size(1280, 1900)  # the whole page (docs/tracker.png is one)
    try:
        browser.save_screenshot(str(tmp_path / "tracker.png"))
    finally:
        browser.set_window_size(1280, 1000)
    assert (tmp_path / "tracker.png").stat().st_size > 10_000


def test_a_shared_link_opens_the_payload_and_its_problems(
    browser: Any, flights: Flights, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(flights.tracker + "/?payload=BZ3")
    wait_for(browser, lambda d: d.find_element(By.ID, "selected-name").text == "BZ3")
    problems = browser.find_element(By.ID, "problems").text
    assert "$$BZ3," in problems and "checksum" in problems
    assert browser.find_element(By.ID, "latest-altitude").text == "\u2013"  # none


def test_a_new_string_appears_without_reloading(browser: Any, flights: Flights) -> None:
    from selenium.webdriver.common.by import By

    browser.get(flights.tracker + "/?payload=STELLA2")
    wait_for(browser, lambda d: d.find_element(By.ID, "selected-name").text == "STELLA2")
    loaded_at = browser.execute_script("return window.tracker.loadedAt")
    points = polyline_points(browser, "track-line")
    # The sentence STELLA2 would have sent after its last real one: its layout, the
    # next id, a new altitude, and its crc16-ccitt checksum.
    fields = "STELLA2,429,09:32:15,44.68400,7.99900,4321,3,7,-1,4300,2.7"
    sentence = f"$${fields}*{crc16_ccitt(fields.encode())}\n"
    now = int(time.time())
    flights.post(
        [
            {
                "callsign": "M0NEW",
                "type": "RECEIVED_TELEM",
                "time_created": now,
                "time_uploaded": now,
                "data": {"string": base64.b64encode(sentence.encode()).decode()},
            }
        ]
    )
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "latest-altitude").text == "4321 m",
        timeout=REFRESH_WAIT,
    )
    assert browser.execute_script("return window.tracker.loadedAt") == loaded_at  # no reload
    assert polyline_points(browser, "track-line") == points + 1
    assert "M0NEW" in browser.find_element(By.ID, "receivers").text


def test_the_page_is_readable_on_a_phone(browser: Any, flights: Flights, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.set_window_size(390, 844)
    try:
        browser.get(flights.tracker + "/?payload=SP")
        wait_for(browser, lambda d: d.find_element(By.ID, "selected-name").text == "SP")
        # Nothing wider than the screen: the page does not scroll sideways.
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= browser.execute_script("return window.innerWidth")
        # The payload list fits too (its less needed columns are hidden).
        table = browser.find_element(By.ID, "payloads")
        assert table.rect["width"] <= browser.execute_script("return window.innerWidth")
        track = browser.find_element(By.ID, "track").rect
        altitude = browser.find_element(By.ID, "altitude").rect
        assert altitude["y"] >= track["y"] + track["height"]  # one column: stacked
        assert track["width"] >= 300
        browser.save_screenshot(str(tmp_path / "tracker-phone.png"))
    finally:
        browser.set_window_size(1280, 1000)
