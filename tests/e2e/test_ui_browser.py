"""The UI in a real headless browser (Debian's chromium, selenium) on the live stack: every page
loads without an error, a text predicted on /predict is found on /history, the analytics chart
renders, and a review labelled on /label arrives as a feedback row in PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers.stream_env import wait_until
from tests.helpers.ui_env import Live, feedback_rows, live_stack, ui_process
from ui import browser

REVIEWS = 30


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, str]]:
    workdir = tmp_path_factory.mktemp("ui-e2e")
    with live_stack(workdir, reviews=REVIEWS) as live, ui_process(live, workdir) as url:
        yield live, url


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    d = browser.chrome(1280, 1600)
    try:
        yield d
    finally:
        d.quit()


def page_text(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_every_page_loads_without_an_error(stack: tuple[Live, str], driver: WebDriver) -> None:
    _, url = stack
    titles = {}
    for path in browser.PATHS:
        browser.open_page(driver, url, path)
        text = page_text(driver)
        assert "Traceback" not in text and "went wrong" not in text, (path, text[:2000])
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'), path
        titles[path] = driver.find_element(By.TAG_NAME, "h1").text
    assert titles == {
        "": "ulasan",
        "predict": "Predict",
        "batch": "Batch",
        "history": "History",
        "analytics": "Analytics",
        "loop": "Closed loop",
        "label": "Label queue",
    }


def test_a_predicted_text_is_found_on_history(stack: tuple[Live, str], driver: WebDriver) -> None:
    _, url = stack
    marker = f"penanda{uuid.uuid4().hex[:8]}"
    browser.open_page(driver, url, "predict")
    label = browser.predict_text(driver, f"Aplikasi {marker} bagus sekali")
    assert label in {"negative", "neutral", "positive"}

    def listed() -> bool:
        browser.open_page(driver, url, "history")
        box = driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Search the text"]')
        box.send_keys(marker + "\n")
        browser.settled(driver)
        return "1 prediction(s) match" in page_text(driver)

    # the worker stores the gateway's prediction off the request path: poll for it
    wait_until(listed, 60, f"{marker} on /history", interval_s=1)
    assert marker in driver.page_source  # the grid's accessible cells carry the text


def test_the_analytics_chart_renders(stack: tuple[Live, str], driver: WebDriver) -> None:
    _, url = stack
    browser.open_page(driver, url, "analytics")
    WebDriverWait(driver, 30).until(
        expected_conditions.presence_of_element_located(
            (
                By.CSS_SELECTOR,
                '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg',
            )
        )
    )
    charts = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]')
    assert len(charts) >= 4  # over time, shares, confidence, rating confusion
    size = charts[0].size
    assert size["width"] > 200 and size["height"] > 100


def test_a_label_click_becomes_a_feedback_row(stack: tuple[Live, str], driver: WebDriver) -> None:
    live, url = stack
    browser.open_page(driver, url, "label")
    button = driver.find_element(By.XPATH, "//button[.//p[text()='positive']]")
    button.click()
    WebDriverWait(driver, 30).until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, '[data-testid="stAlertContentSuccess"]')
        )
    )
    message = driver.find_element(By.CSS_SELECTOR, '[data-testid="stAlertContentSuccess"]').text
    found = re.search(r"Labelled (\S+) positive", message)
    assert found, message
    review_id = found[1].strip("`")
    rows = wait_until(lambda: feedback_rows(live.env, review_id), 60, "the feedback row")
    assert rows == [("positive", "human")]


def test_screenshots_command_writes_every_page(stack: tuple[Live, str], tmp_path: Path) -> None:
    _, url = stack
    written = browser.screenshots(url, tmp_path / "shots", predict="Pengiriman cepat, mantap")
    assert [p.name for p in written] == [f"{p or 'home'}.png" for p in browser.PATHS]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
