"""The web UI as a person uses it: `dagster dev` on the project's code location, driven by a real headless Chromium.

The server runs without ``-h``: the README's command names 127.0.0.1 explicitly, and what must hold is that the
default binds loopback too (someone who drops ``-h`` must not open the UI to the network). One server serves both
tests (each ``dagster dev`` start costs 6-18 s: a webserver, a daemon and a code server, each importing Dagster)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kuairec_pipeline_tests.builders import (
    CHROMIUM_FLAGS,
    LOOPBACK_HEX,
    REPO,
    SCREENSHOT_DIR,
    chromium,
    copy_instance,
    dagster_dev,
    free_port,
    listening_addresses,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def web_ui(materialized_pipeline, tmp_path_factory):
    port = free_port()
    env = copy_instance(materialized_pipeline, tmp_path_factory.mktemp("ui"))  # its daemon writes to the instance
    with dagster_dev([], env, REPO, port) as url:
        yield url, port, env


def test_ui_binds_to_loopback_unless_told_otherwise(web_ui):
    _, port, _ = web_ui
    addresses = listening_addresses(port)
    assert addresses, "nothing listens on the UI port"
    # anything but 127.0.0.1 (0.0.0.0, ::) would be reachable from outside the machine
    assert addresses == {LOOPBACK_HEX}, addresses


def _open_markdown(page, metadata_key: str) -> None:
    """Markdown metadata sits behind a '[Show Markdown]' link in the asset's metadata table; open its dialog."""
    row = page.locator("tr", has_text=metadata_key)
    row.first.wait_for(timeout=60000)
    row.first.get_by_text("Show Markdown").click()


def test_asset_pages_show_metadata_in_a_real_browser(web_ui, tmp_path):
    from playwright.sync_api import sync_playwright

    executable = chromium()  # a skip here, but a failure under CI
    url, _, env = web_ui
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/assets/filtered_ratios", wait_until="domcontentloaded")
        # Dagster's community pop-up may open at any moment of the first visit (in CI it once came up on the second
        # page and its backdrop took every click): Playwright dismisses it whenever it is there before an action,
        # instead of one timed wait.
        page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
        _open_markdown(page, "watch_ratio_histogram")
        histogram = page.locator("img[src^='data:image/png']").first
        histogram.wait_for(timeout=20000)
        # decoded and laid out: a broken data URI would leave naturalWidth at 0
        assert histogram.evaluate("img => img.complete && img.naturalWidth") > 100
        page.screenshot(path=str(tmp_path / "filtered_ratios.png"))
        page.goto(f"{url}/assets/metrics", wait_until="domcontentloaded")
        # headline metrics are plain rounded numbers: on the page itself, no dialog to open
        stored = pl.read_parquet(Path(env["KUAIREC_HOME"]) / "assets" / "metrics.parquet")
        rmse = stored.filter(
            (pl.col("split") == "test") & (pl.col("metric") == "rmse") & (pl.col("model") == "two_tower")
        )["value"].item()
        row = page.locator("tr", has_text="rmse two_tower").first
        row.wait_for(timeout=60000)
        assert f"{rmse:.4f}".rstrip("0") in row.inner_text(), row.inner_text()
        row.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOT_DIR / "ui_metrics.png"))
        _open_markdown(page, "metrics_table")
        dialog = page.get_by_role("dialog")
        for model in ("two_tower", "als", "hybrid_fusion", "popularity", "oracle (reference)"):
            dialog.get_by_text(model, exact=True).first.wait_for(timeout=20000)
        page.screenshot(path=str(tmp_path / "metrics.png"))

        page.goto(f"{url}/assets/two_tower_embeddings", wait_until="domcontentloaded")
        page.locator("tr", has_text="kept_epoch").first.wait_for(timeout=60000)
        content = page.content()
        assert "shape/" not in content  # one summary line, not a row per array
        assert "user_embeddings (" in content and "weights.*:" in content
        _open_markdown(page, "training_curve")
        curve = page.locator("img[src^='data:image/png']").first
        curve.wait_for(timeout=20000)
        assert curve.evaluate("img => img.complete && img.naturalWidth") > 100
        page.wait_for_timeout(500)  # let the dialog finish fading in before the screenshot
        page.screenshot(path=str(SCREENSHOT_DIR / "ui_two_tower.png"))
        browser.close()
