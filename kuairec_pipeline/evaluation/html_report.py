"""One self-contained HTML page (images inline as base64 PNG) summarising a pipeline run for a person.

Written by the metrics step to ``$KUAIREC_HOME/reports/report.html``: metrics by model (every metric the table
holds, so new ones appear without a change here), the watch-ratio distribution before and after filtering (exact
counts), training curves per trained model, catalogue coverage, and a few users' recent views next to their top-k.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.evaluation import report_plots
from kuairec_pipeline.evaluation.metrics import CHOICE_METRICS, COUNT_METRICS, LOWER_IS_BETTER
from kuairec_pipeline.evaluation.report import REFERENCE_MODELS, metrics_bar_chart_png
from kuairec_pipeline.evaluation.report_inputs import TrainingCurve, UserExample
from kuairec_pipeline.evaluation.reranking import SUFFIX as RERANKED_SUFFIX
from kuairec_pipeline.features.plots import HistogramCounts, watch_ratio_histogram_png

REPORT_FILE = "report.html"
DECIMALS = 4  # metric values are shown rounded; the full value is kept in each cell's data-value attribute

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; } td.num { text-align: right; }
tr.reference td { font-style: italic; color: #555; } tr.baseline td:first-child { color: #666; }
td.best { font-weight: bold; } .note { color: #555; font-size: 0.85rem; }
.pair { display: flex; gap: 1.5rem; flex-wrap: wrap; align-items: flex-start; }
"""


@dataclass(frozen=True)
class RatioDistribution:
    """Exact watch-ratio counts before filtering (all big_matrix rows) and after (training rows)."""

    before: HistogramCounts
    after: HistogramCounts
    max_watch_ratio: float | None = None


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _number(value: float | None, metric: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{int(value):,}" if metric in COUNT_METRICS else f"{value:.{DECIMALS}f}"


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    classes: Sequence[str] | None = None,
    table_id: str | None = None,
) -> str:
    """Cells are given as HTML (already escaped); numeric cells carry their own <td>."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        css = f' class="{classes[index]}"' if classes and classes[index] else ""
        body.append(f"<tr{css}>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _metric_sections(metrics: pl.DataFrame, trained: set[str]) -> str:
    parts = []
    splits = metrics["split"].unique(maintain_order=True).to_list()
    for split in sorted(splits, key=lambda s: (s != "test", s)):
        frame = metrics.filter(pl.col("split") == split)
        names = frame["metric"].unique(maintain_order=True).to_list()
        names = [m for m in names if m not in COUNT_METRICS] + [m for m in names if m in COUNT_METRICS]
        models = frame["model"].unique(maintain_order=True).to_list()
        values = {(m, k): v for m, k, v in frame.select("model", "metric", "value").iter_rows()}
        best = {}
        for name in names:
            if name in COUNT_METRICS or name in CHOICE_METRICS:
                continue
            contenders = [
                values[(m, name)]
                for m in models
                if m not in REFERENCE_MODELS
                and (m, name) in values
                and values[(m, name)] is not None
                and not math.isnan(values[(m, name)])
            ]
            if contenders:
                best[name] = min(contenders) if name in LOWER_IS_BETTER else max(contenders)
        rows, classes = [], []
        for model in models:
            kind = (
                "reference"
                if model in REFERENCE_MODELS
                else "trained"
                if model in trained
                else "re-ranked"
                if model.endswith(RERANKED_SUFFIX)
                else "baseline"
            )
            cells = [html.escape(model), kind]
            for name in names:
                value = values.get((model, name))
                css = "num best" if kind != "reference" and value is not None and best.get(name) == value else "num"
                data = "" if value is None else f' data-value="{value!r}"'
                cells.append(
                    f'<td class="{css}" data-model="{html.escape(model)}" data-split="{html.escape(split)}"'
                    f' data-metric="{html.escape(name)}"{data}>{_number(value, name)}</td>'
                )
            rows.append(cells)
            classes.append(kind)
        parts.append(f"<h3>split: {html.escape(split)}</h3>")
        parts.append(_table(["model", "kind", *names], rows, classes, table_id=f"metrics-{split}"))
    return "\n".join(parts)


def _examples_section(examples: Sequence[UserExample]) -> str:
    parts = []
    for example in examples:
        history = _table(
            ["video", "watch ratio", "caption", "tags"],
            [
                [str(v), f'<td class="num">{w:.3f}</td>', html.escape(c or ""), html.escape(t or "")]
                for v, w, c, t in example.history.select("video_id", "watch_ratio", "caption", "tags").iter_rows()
            ],
        )
        top = _table(
            ["rank", "video", "predicted watch ratio", "caption", "tags"],
            [
                [str(r), str(v), f'<td class="num">{p:.3f}</td>', html.escape(c or ""), html.escape(t or "")]
                for r, v, p, c, t in example.top_k.select(
                    "rank", "video_id", "predicted_watch_ratio", "caption", "tags"
                ).iter_rows()
            ],
        )
        parts.append(
            f'<h3>user {example.user_id}</h3><div class="pair" data-user="{example.user_id}">'
            f"<div><p>latest {example.history.height} views (train and validation, newest first)</p>{history}</div>"
            f"<div><p>top {example.top_k.height} unseen videos by {html.escape(example.model)}</p>{top}</div></div>"
        )
    return "\n".join(parts) or '<p class="note">No test users.</p>'


def render_html_report(
    metrics: pl.DataFrame,
    *,
    ratios: RatioDistribution | None = None,
    curves: Sequence[TrainingCurve] = (),
    coverage: Mapping[str, float] | None = None,
    coverage_k: int = 10,
    examples: Sequence[UserExample] = (),
    trained_models: Sequence[str] = (),
    context: Mapping[str, str] | None = None,
) -> str:
    """The report as one HTML string (see :func:`write_html_report`, which writes it).

    Parameters
    ----------
    metrics : the long metrics table (``model, split, metric, value, count``).
    ratios : the watch-ratio distribution to plot, if any.
    curves : per-epoch training curves of the neural models.
    coverage : model -> catalogue coverage@``coverage_k`` in [0, 1].
    coverage_k : the list length of ``coverage``.
    examples : example users' top lists.
    trained_models : names labelled "trained"; the oracle is the reference; every other model a baseline.
    context : facts listed at the top of the page, key -> value.

    Returns
    -------
    str: a self-contained HTML page (images inlined as base64 PNG).
    """
    trained = set(trained_models)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in (context or {}).items())
    body = [f"<h1>KuaiRec pipeline report</h1><p class='note'>generated {generated}</p><ul>{facts}</ul>"]

    body.append("<h2 id='metrics'>Metrics by model</h2>")
    body.append(
        "<p class='note'>Baselines, trained models and the oracle (the planted expectation, a ceiling "
        f"only the synthetic twin has) on the same rows; best non-reference value in bold; values rounded to "
        f"{DECIMALS} decimals. Protocol: docs/DESIGN.md.</p>"
    )
    test = metrics.filter(pl.col("split") == "test")
    if not test.is_empty():
        body.append(_image(metrics_bar_chart_png(test), "test metrics per model"))
    body.append(_metric_sections(metrics, trained))

    body.append("<h2 id='ratios'>Watch-ratio distribution</h2>")
    if ratios is None:
        body.append("<p class='note'>Not available.</p>")
    else:
        body.append(
            _image(
                watch_ratio_histogram_png(ratios.before, ratios.after, ratios.max_watch_ratio),
                "watch ratio before and after filtering",
            )
        )
        rows = [
            [
                label,
                f'<td class="num" data-count="{c.total}">{c.total:,}</td>',
                f'<td class="num">{c.overflow:,}</td>',
                f'<td class="num">{c.missing:,}</td>',
            ]
            for label, c in (
                ("before filtering (big_matrix)", ratios.before),
                ("after filtering (training rows)", ratios.after),
            )
        ]
        body.append(
            _table(["rows", "total (all counted)", "> 5 (not drawn)", "missing"], rows, table_id="ratio-counts")
        )

    body.append("<h2 id='training'>Training curves</h2>")
    for curve in curves:
        body.append(
            _image(
                report_plots.training_curves_png(curve.history, curve.model, curve.best_epoch),
                f"training curves of {curve.model}",
            )
        )
        last = curve.history.tail(1).row(0, named=True)
        stats = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "epoch" and v is not None)
        body.append(
            f"<p class='note'>{html.escape(curve.model)}: {curve.history.height} epochs; kept epoch "
            f"{'n/a' if curve.best_epoch is None else curve.best_epoch + 1}; last epoch: {stats}</p>"
        )
    if not curves:
        body.append("<p class='note'>No model stored a training history.</p>")

    body.append(f"<h2 id='coverage'>Catalogue coverage@{coverage_k} of the served lists (all videos)</h2>")
    if coverage:
        body.append(
            "<p class='note'>Share of all videos that appear in at least one test user's top "
            f"{coverage_k} over every video (seen videos excluded), as served; Ge et al., RecSys 2010. The metrics "
            "tables' catalogue_coverage@10 ranks only the test matrix's videos, so the two differ.</p>"
        )
        body.append(_image(report_plots.coverage_bar_png(dict(coverage), coverage_k), "catalogue coverage"))
        body.append(
            _table(
                ["model", "coverage"],
                [[html.escape(m), f'<td class="num" data-coverage="{v!r}">{v:.4f}</td>'] for m, v in coverage.items()],
                table_id="coverage",
            )
        )
    else:
        body.append("<p class='note'>Not computed.</p>")

    body.append("<h2 id='users'>Example users</h2>")
    body.append(_examples_section(examples))
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>KuaiRec pipeline report</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_html_report(
    folder: str | Path,
    metrics: pl.DataFrame,
    *,
    ratios: RatioDistribution | None = None,
    curves: Sequence[TrainingCurve] = (),
    coverage: Mapping[str, float] | None = None,
    coverage_k: int = 10,
    examples: Sequence[UserExample] = (),
    trained_models: Sequence[str] = (),
    context: Mapping[str, str] | None = None,
) -> Path:
    """Write ``folder/report.html`` atomically and return its path.

    Parameters
    ----------
    folder : str or Path
        Output folder (``$KUAIREC_HOME/reports`` in the pipeline); created if missing.
    metrics : polars.DataFrame
        The ``metrics`` asset, long form (``model``, ``split``, ``metric``, ``value``): one table per split, one
        column per metric present.
    ratios : RatioDistribution, optional
        Exact watch-ratio counts before and after filtering.
    curves : sequence of TrainingCurve
        Per-epoch histories of the trained models that store one.
    coverage : mapping model -> float, optional
        Catalogue coverage at ``coverage_k`` (0..1).
    examples : sequence of UserExample
        A few users' recent views and top-k.
    trained_models : sequence of str
        Names labelled "trained"; ``oracle`` is the reference; every other model is labelled a baseline.
    context : mapping str -> str, optional
        Facts listed at the top (data source, profile, run id).

    Returns
    -------
    Path
        The written file.
    """
    page = render_html_report(
        metrics,
        ratios=ratios,
        curves=curves,
        coverage=coverage,
        coverage_k=coverage_k,
        examples=examples,
        trained_models=trained_models,
        context=context,
    )
    target = Path(folder) / REPORT_FILE
    with atomic_path(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target
