"""The HTML report: rendered from plain inputs (fast), and the one the pipeline wrote, opened in real Chromium."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from kuairec_pipeline.evaluation.html_report import RatioDistribution, render_html_report, write_html_report
from kuairec_pipeline.evaluation.report_inputs import TrainingCurve, UserExample, training_curve
from kuairec_pipeline.features.plots import histogram_counts
from kuairec_pipeline.models.registry import TRAINED_MODELS
from kuairec_pipeline_tests.builders import CHROMIUM_FLAGS, SCREENSHOT_DIR, chromium


def _metrics() -> pl.DataFrame:
    rows = [
        ("global_mean", "test", "rmse", 0.2),
        ("als", "test", "rmse", 0.1234567),
        ("oracle", "test", "rmse", 0.09),
        ("als", "test", "novel_metric@10", 0.5),
        ("als", "val", "rmse", 0.11),
        ("als", "test", "users_ranked", 36.0),
    ]
    return pl.DataFrame(rows, schema=["model", "split", "metric", "value"], orient="row")


def _cells(page: str) -> dict[tuple[str, str, str], tuple[float, str]]:
    pattern = re.compile(
        r'data-model="([^"]+)" data-split="([^"]+)" data-metric="([^"]+)" data-value="([^"]+)">([^<]*)<'
    )
    return {(html.unescape(m), s, html.unescape(k)): (float(v), text) for m, s, k, v, text in pattern.findall(page)}


def test_every_metric_of_the_table_is_rendered_rounded_with_its_exact_value():
    history = pl.DataFrame({"epoch": [0, 1, 2], "train_loss": [0.05, 0.04, 0.035], "val_mse": [0.06, 0.05, 0.052]})
    values = np.array([0.2, 0.5, 1.5, 4.0, 9.0])
    example = UserExample(
        3,
        "als",
        pl.DataFrame({"video_id": [1], "watch_ratio": [0.5], "caption": ["<b>x</b>"], "tags": ["舞蹈"]}),
        pl.DataFrame(
            {"rank": [1], "video_id": [2], "predicted_watch_ratio": [1.1], "caption": ["y"], "tags": ["tag ids 3"]}
        ),
    )
    page = render_html_report(
        _metrics(),
        ratios=RatioDistribution(histogram_counts(values), histogram_counts(values[values <= 3]), 3.0),
        curves=[TrainingCurve("two_tower", history, 1)],
        coverage={"als": 0.25},
        examples=[example],
        trained_models=["als"],
    )
    cells = _cells(page)
    assert cells[("als", "test", "rmse")] == (0.1234567, "0.1235")
    assert cells[("als", "test", "novel_metric@10")] == (0.5, "0.5000")  # a metric this module never heard of
    assert cells[("als", "val", "rmse")][0] == 0.11
    assert cells[("als", "test", "users_ranked")] == (36.0, "36")
    assert len(cells) == _metrics().height
    assert '<td class="num best"' in page and "reference" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page  # captions are escaped
    assert 'data-count="5"' in page  # the true total before filtering
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4  # metrics chart, histogram, one training curve, coverage
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)


def test_report_is_written_atomically_into_the_folder(tmp_path):
    path = write_html_report(tmp_path / "reports", _metrics())
    assert path == tmp_path / "reports" / "report.html"
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary left behind
    assert "Not available" in path.read_text()


def test_training_curve_reads_the_two_tower_bundle_layout_and_refuses_a_mismatch():
    bundle = {"training_history": np.array([[0, 0.05, 0.06, 0.2], [1, 0.04, 0.05, 0.19]]), "best_epoch": np.array(1)}
    curve = training_curve("two_tower", bundle)
    assert curve.history.columns == ["epoch", "train_loss", "val_mse", "val_mae"] and curve.best_epoch == 1
    assert training_curve("als", {"user_factors": np.zeros((2, 2))}) is None
    with pytest.raises(ValueError, match="training_history has shape"):
        training_curve("x", {"training_history": np.zeros((2, 3))})


@pytest.mark.slow
def test_pipeline_report_opens_in_chromium_images_decode_and_numbers_match_metrics(materialized_pipeline):
    from playwright.sync_api import sync_playwright

    executable = chromium()  # a skip here, but a failure under CI
    home = Path(materialized_pipeline["KUAIREC_HOME"])
    report = home / "reports" / "report.html"
    stored = pl.read_parquet(home / "assets" / "metrics.parquet")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(report.as_uri(), wait_until="load")
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        # a broken data URI leaves naturalWidth at 0
        assert len(images) >= 4 and all(done and width > 100 for _, done, width in images), images
        cells = page.evaluate("""Array.from(document.querySelectorAll('td[data-metric]')).map(td =>
            [td.dataset.model, td.dataset.split, td.dataset.metric, td.dataset.value, td.textContent])""")
        # A cell without data-value is a metric this model has no row for (e.g. the serving split's penalty).
        shown = {(m, s, k): (float(v), text) for m, s, k, v, text in cells if v is not None}
        assert len(shown) == stored.height
        for model, split, metric, value in stored.select("model", "split", "metric", "value").iter_rows():
            exact, text = shown[(model, split, metric)]
            assert exact == pytest.approx(value, rel=1e-12, abs=1e-15), (model, split, metric)
            assert float(text.replace(",", "")) == pytest.approx(value, abs=0.5e-4 if "." in text else 0.5)
        users = page.locator("div.pair[data-user]")
        assert users.count() == 3
        assert page.locator("div.pair[data-user] tbody tr").count() > 3 * 10  # 10 recommendations each + history
        page.screenshot(path=str(SCREENSHOT_DIR / "report.png"), full_page=True)
        browser.close()
    raw_rows = pl.scan_parquet(home / "assets" / "raw_interactions.parquet").select(pl.len()).collect().item()
    assert f'data-count="{raw_rows}"' in report.read_text()  # the true row count before filtering, not a sample


def test_the_pipeline_reports_charts_are_the_asset_pages_charts(materialized_pipeline):
    """The report draws its histogram, metrics chart and training curves from the same numbers as the asset pages
    (the in-process chart memo reuses them), so a figure never disagrees between the two."""
    page = (Path(materialized_pipeline["KUAIREC_HOME"]) / "reports" / "report.html").read_text()
    in_report = set(re.findall(r'src="data:image/png;base64,([^"]+)"', page))
    on_pages = {}
    with DagsterInstance.from_config(materialized_pipeline["DAGSTER_HOME"]) as instance:
        for key in ("filtered_ratios", "metrics", *(entry.asset_key for entry in TRAINED_MODELS.values())):
            event = instance.get_latest_materialization_event(AssetKey(key))
            for name, value in event.asset_materialization.metadata.items():
                if name in ("watch_ratio_histogram", "metrics_chart", "training_curve"):
                    on_pages[f"{key}.{name}"] = re.search(r"base64,([^)]+)\)", value.value).group(1)
    assert {
        "filtered_ratios.watch_ratio_histogram",
        "metrics.metrics_chart",
        "two_tower_embeddings.training_curve",
    } <= set(on_pages)
    assert not [name for name, png in on_pages.items() if png not in in_report]


def test_a_reranked_served_model_is_labelled_as_such_and_its_choices_are_never_best():
    metrics = pl.DataFrame(
        {
            "model": ["als", "als+coverage", "als", "als+coverage", "als+coverage"],
            "split": ["test", "test", "serving", "serving", "serving"],
            "metric": ["ndcg@10", "ndcg@10", "catalogue_coverage@10", "catalogue_coverage@10", "penalty"],
            "value": [0.3, 0.25, 0.05, 0.2, 0.7],
            "count": [10, 10, 100, 100, 100],
        }
    )
    page = render_html_report(metrics, trained_models=["als"])
    assert "<td>als+coverage</td><td>re-ranked</td>" in page
    assert 'data-metric="penalty" data-value="0.7"' in page and '"num best" data-model="als+coverage"' in page
    assert 'class="num best" data-model="als+coverage" data-split="serving" data-metric="penalty"' not in page
