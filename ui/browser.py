"""A headless browser on the UI: Debian's chromium driven by selenium through chromedriver
(``apt-get install chromium chromium-driver``; nothing is downloaded), and the screenshots of
every page that ``ulasan ui screenshots`` writes."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from ui.errors import UiError

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
#: the URL paths of the UI's pages, in menu order ("" is the home page)
PATHS = ("", "predict", "batch", "history", "analytics", "loop", "label")


class BrowserMissing(UiError):
    """chromium or chromedriver is not installed."""


def chrome(width: int = 1400, height: int = 1800) -> WebDriver:
    """A headless chromium of ``width`` x ``height`` pixels."""
    binary = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver_path = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    if binary is None or driver_path is None:
        raise BrowserMissing(
            "chromium and chromedriver are needed: `apt-get install chromium chromium-driver` "
            "(or `make system-deps`)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    try:
        return webdriver.Chrome(options=options, service=Service(driver_path))
    except WebDriverException as exc:
        raise BrowserMissing(f"chromium did not start: {exc.msg}") from exc


def settled(driver: WebDriver, timeout_s: float = 30.0) -> None:
    """Wait until the page's script run finished: a title is drawn and Streamlit's "running"
    indicator is gone (twice in a row, half a second apart)."""
    wait = WebDriverWait(driver, timeout_s)
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "h1")))
    calm = 0
    deadline = time.monotonic() + timeout_s
    while calm < 2:
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        calm = 0 if running else calm + 1
        if time.monotonic() > deadline:
            raise TimeoutException(f"{driver.current_url} kept running for {timeout_s:.0f}s")
        time.sleep(0.5)


def open_page(driver: WebDriver, base_url: str, path: str, timeout_s: float = 30.0) -> None:
    driver.get(f"{base_url.rstrip('/')}/{path}")
    settled(driver, timeout_s)


def predict_text(driver: WebDriver, text: str, timeout_s: float = 30.0) -> str:
    """On /predict: type ``text``, press Predict, and return the label shown."""
    area = WebDriverWait(driver, timeout_s).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "textarea"))
    )
    # select and delete what is there: clear() bypasses the page's own state
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(Keys.DELETE)
    area.send_keys(text)
    button = driver.find_element(By.XPATH, "//button[.//p[text()='Predict']]")
    button.click()
    metric = WebDriverWait(driver, timeout_s).until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, '[data-testid="stMetricValue"]')
        )
    )
    settled(driver, timeout_s)
    return str(metric.text)


def screenshots(
    base_url: str, out: Path, paths: Sequence[str] = PATHS, predict: str | None = None
) -> list[Path]:
    """One PNG per page under ``out`` (``home.png``, ``predict.png``, ...); with ``predict``,
    /predict is shown after scoring that text and explaining it."""
    out.mkdir(parents=True, exist_ok=True)
    driver = chrome()
    written = []
    # /predict last: its explanation's shortened texts are predictions too (on /history)
    ordered = sorted(paths, key=lambda p: p == "predict")
    try:
        for path in ordered:
            open_page(driver, base_url, path)
            if path == "predict" and predict:
                predict_text(driver, predict)
                explain = driver.find_elements(By.XPATH, "//button[.//p[text()='Explain']]")
                if explain:
                    explain[0].click()
                    time.sleep(1.0)
                    settled(driver)
            target = out / f"{path or 'home'}.png"
            driver.save_screenshot(str(target))
            written.append(target)
    finally:
        driver.quit()
    return sorted(written, key=lambda p: [f"{q or 'home'}.png" for q in paths].index(p.name))
