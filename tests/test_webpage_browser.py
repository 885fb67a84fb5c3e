"""The static HTML leaderboard in a real headless browser: sorting, filtering and estimator links work.

Uses the system's Chromium and chromedriver (Debian: ``apt-get install chromium chromium-driver``)
through selenium, with both paths given so Selenium Manager never looks for (or downloads) a browser.
Without them the test is skipped, unless ``SDSCM_BENCH_REQUIRE_BROWSER=1`` (CI sets it): then it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdscm_bench.ranking import ranking_tables
from sdscm_bench.webpage import write_html
from tests.test_webpage import synthetic_records

pytestmark = pytest.mark.browser

INSTALL = (
    "install Chromium and its driver (Debian/Ubuntu: sudo apt-get install chromium chromium-driver) "
    "and selenium (pip install -e '.[test]')"
)


def _missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not installed; {INSTALL}"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return f"no chromium on PATH; {INSTALL}"
    if not shutil.which("chromedriver"):
        return f"no chromedriver on PATH; {INSTALL}"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        if os.environ.get("SDSCM_BENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SDSCM_BENCH_REQUIRE_BROWSER=1 but the browser test cannot run: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI containers run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # a page that tried the network would get nothing
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any], list[dict[str, Any]]]:
    records = synthetic_records()
    tables = ranking_tables(records)
    path = write_html(tmp_path_factory.mktemp("site") / "index.html", records, tables=tables)
    return path, tables, records


def _click(driver: Any, element: Any) -> None:
    """Scroll the element to the middle first: the sticky filter bar would cover it at the top."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()


def _column(driver: Any, section: Any, header: str) -> Any:
    from selenium.webdriver.common.by import By

    (th,) = [th for th in section.find_elements(By.CSS_SELECTOR, "table.sortable")[0].find_elements(By.TAG_NAME, "th")
             if th.text.rstrip(" ▲▼") == header]  # fmt: skip
    return th


def _estimators_shown(section: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    table = section.find_elements(By.CSS_SELECTOR, "table.sortable")[0]
    return [
        tr.find_elements(By.TAG_NAME, "td")[1].text for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]


def test_sort_filter_and_follow_an_estimator_link(
    browser: Any, site: tuple[Path, list[Any], list[dict[str, Any]]]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    path, tables, records = site
    driver = browser
    driver.get(path.as_uri())
    assert driver.title == "sdscm-bench leaderboard"
    # nothing fetched, no script error
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    sections = driver.find_elements(By.CSS_SELECTOR, "section.rt")
    assert len(sections) == len(tables) and all(s.is_displayed() for s in sections)
    assert driver.find_element(By.ID, "shown-count").text == f"{len(tables)} of {len(tables)} tables shown"

    # Sort the first table by ATE RMSE, descending (second click), then by estimator name.
    i, table = max(enumerate(tables), key=lambda it: len(it[1].rows))
    section = driver.find_element(By.ID, f"table-{i + 1}")
    by_rmse = [r.estimator for r in sorted(table.rows, key=lambda r: r.ate_rmse)]
    assert _estimators_shown(section) == [r.estimator for r in table.rows]  # tier, then RMSE
    th = _column(driver, section, "ATE RMSE [95% CI]")
    _click(driver, th)
    assert _estimators_shown(section) == by_rmse and th.get_attribute("aria-sort") == "ascending"
    _click(driver, th)
    assert _estimators_shown(section) == by_rmse[::-1] and th.get_attribute("aria-sort") == "descending"
    _click(driver, _column(driver, section, "estimator"))
    assert _estimators_shown(section) == sorted(r.estimator for r in table.rows)
    assert th.get_attribute("aria-sort") is None

    # Filter to one LM: only its tables and rows are shown.
    Select(driver.find_element(By.ID, "filter-lm")).select_by_value("lm-b")
    expected = [j for j, t in enumerate(tables) if t.lm == "lm-b"]
    assert 0 < len(expected) < len(tables)
    shown = [s for s in driver.find_elements(By.CSS_SELECTOR, "section.rt") if s.is_displayed()]
    assert [s.get_attribute("id") for s in shown] == [f"table-{j + 1}" for j in expected]
    rows = [tr for tr in driver.find_elements(By.CSS_SELECTOR, "section.rt tbody tr") if tr.is_displayed()]
    assert {tr.get_attribute("data-lm") for tr in rows} == {"lm-b"}
    n_cal = sum(
        sum(r.ate_coverage is not None or r.unit_coverage is not None for r in tables[j].rows)
        for j in expected
    )
    assert len(rows) == sum(len(tables[j].rows) for j in expected) + n_cal
    assert driver.find_element(By.ID, "shown-count").text == f"{len(expected)} of {len(tables)} tables shown"

    # Follow an estimator's link from a shown table: its section, box plots and per-dataset rows.
    link = shown[0].find_element(By.CSS_SELECTOR, "a.est-link")
    name = link.text
    _click(driver, link)
    assert driver.execute_script("return location.hash") == f"#est-{name}"
    est = driver.find_element(By.ID, f"est-{name}")
    assert est.is_displayed()
    top = driver.execute_script("return arguments[0].getBoundingClientRect().top", est)
    assert -2 <= top < driver.execute_script("return innerHeight")  # scrolled to the section
    plots = est.find_elements(By.CSS_SELECTOR, "figure svg")
    assert plots and all(p.is_displayed() for p in plots)
    assert plots[0].find_elements(By.TAG_NAME, "rect")
    pd_rows = est.find_elements(By.CSS_SELECTOR, "div.per-dataset tbody tr")
    assert pd_rows and {tr.get_attribute("data-lm") for tr in pd_rows} == {
        "lm-b"
    }  # the filter applies here too
    assert len(pd_rows) == sum(r["estimator"] == name and r["lm"] == "lm-b" for r in records)  # under 100

    # The per-dataset table sorts too: by ATE error, ascending.
    head = est.find_element(By.XPATH, ".//div[@class='per-dataset']//th[text()='ATE error']")
    _click(driver, head)
    col = [th.text.rstrip(" ▲▼") for th in est.find_elements(By.CSS_SELECTOR, "div.per-dataset th")].index(
        "ATE error"
    )
    values = [
        float(tr.find_elements(By.TAG_NAME, "td")[col].text)
        for tr in est.find_elements(By.CSS_SELECTOR, "div.per-dataset tbody tr")
        if tr.find_elements(By.TAG_NAME, "td")[col].text != "–"
    ]
    assert values and values == sorted(values)

    # Back to every LM.
    Select(driver.find_element(By.ID, "filter-lm")).select_by_value("")
    assert all(s.is_displayed() for s in driver.find_elements(By.CSS_SELECTOR, "section.rt"))
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []

    # Opened with an estimator's anchor (a shared link): the page lands on that section, even though
    # the per-dataset tables above it are drawn after the browser first scrolled.
    last = sorted({r["estimator"] for r in records})[-1]
    driver.get(path.as_uri() + f"#est-{last}")
    top = driver.execute_script(
        "return arguments[0].getBoundingClientRect().top", driver.find_element(By.ID, f"est-{last}")
    )
    assert 0 <= top < 100
