"""A person at Open WebUI, in Debian's headless Chromium driven by its own chromedriver.

Run by ``test_open_webui.py`` with ``.venv-webui``'s Python (Selenium lives there):

    python tests/webui/browse.py URL MODEL QUESTION EXPECTED SCREENSHOT

Opens the page, waits for the model in the model selector, closes the release notes a first
visit shows, types the question into the chat box, presses Enter and waits for EXPECTED in the
page. Prints one JSON line: what the page said (``listed``, ``answer``) or the error it showed.
Exit status 0 when the answer came, 1 otherwise; a screenshot either way.
"""

from __future__ import annotations

import json
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

#: What Open WebUI shows when a request failed (an error bubble in the chat).
FAILURES = ("does not support", "error", "Error", "Failed")


def page(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def main(url: str, model: str, question: str, expected: str, screenshot: str) -> int:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    said: dict[str, object] = {}
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 90)
        wait.until(lambda d: model in page(d))  # the model selector shows it
        said["listed"] = True
        notes = (By.XPATH, '//button[contains(., "Okay")]')  # "What's New", first visit
        if driver.find_elements(*notes):
            wait.until(ec.element_to_be_clickable(notes)).click()
            wait.until(ec.invisibility_of_element_located(notes))
        box = wait.until(ec.element_to_be_clickable((By.ID, "chat-input")))
        box.click()
        box.send_keys(question)
        box.send_keys(Keys.ENTER)
        start = time.monotonic()
        WebDriverWait(driver, 240).until(
            lambda d: (
                expected in page(d).split(question, 1)[-1]
                or any(f in page(d).split(question, 1)[-1] for f in FAILURES)
            )
        )
        said["seconds"] = round(time.monotonic() - start, 1)
        time.sleep(2)  # the stream's end
        said["answer"] = page(driver).split(question, 1)[-1].strip()[:2000]
        return 0 if expected in str(said["answer"]) else 1
    except TimeoutException:
        said["timeout"] = page(driver)[:2000]
        return 1
    finally:
        driver.save_screenshot(screenshot)
        driver.quit()
        print(json.dumps(said))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
