"""Issue 7: two levers for learning personal taste from the training rows that ``taste_ceiling.py`` did not try, each
measured as a taste term added to the ``user_video_bias`` model.

    OPENBLAS_NUM_THREADS=1 python benchmarks/taste_levers.py --profile demo --seeds 11
    OPENBLAS_NUM_THREADS=1 python benchmarks/taste_levers.py --time-full   # fit cost at KuaiRec's full size

(a) A less noisy target. Every model fits the min-max scaled, clipped watch ratio of all training rows, a mix of
    zero, swipe, engaged and replay views. Target ``scaled`` is that one, the taste fitted to its residual after the
    bias model. Target ``engaged>t`` is the log watch ratio of the training rows with watch ratio above ``t``
    (engaged-looking views), minus its own ridge biases (``global + b_u + b_v``, l2 5, ``biases.fit_biases``).
(b) Weighted-lambda regularization (ALS-WR: Zhou, Wilkinson, Schreiber & Pan, "Large-scale parallel collaborative
    filtering for the Netflix prize", AAIM 2008): each user's (video's) ridge penalty is lambda times its number of
    training rows, as in Spark MLlib's ALS, instead of one fixed penalty.

Taste models, each fitted to a target's residuals:

- ``tag s``: the shrunken user x tag affinity of ``user_tag_profile`` (``evaluation/tag_profile.py``):
  ``a_ut = sum_rows w_vt r / (sum_rows w_vt + s)``, term ``sum_t a_ut w_vt``;
- ``MF rank r, l2 L`` and ``MF-WR rank r, lambda L``: explicit MF (``_taste.residual_factors``) of the residual
  divided by its standard deviation, so that one penalty grid means the same on both targets (on the raw residual
  the penalty is L times that deviation), fixed or weighted-lambda; term ``p_u . q_v``.

Each term t joins the bias model as ``clip(bias(u, v) + c t(u, v), 0, 1)``, with c the least-squares coefficient of
t on the tuning val rows' scaled target minus the bias prediction (val rows only). Per taste model and target kind
the settings (threshold, shrinkage, rank, penalty) are chosen by val ndcg@10 (each val user ranks their own val
videos, positive: mean watch ratio > 2, as on the selection slice) and, beside it, by val rmse. ``tag + MF`` joins
the val-chosen tag and MF terms of one target with two coefficients fitted on val. Test: ``evaluate``'s ndcg@10 and
mae on the test grid; gap closed = (ndcg - bias) / (oracle - bias). The test grid chooses nothing; "best on test"
is printed as an upper bound only. An MF term whose factors a large penalty shrank to ~0 is marked "collapsed" and
counts as no term (c = 0).

Diagnostics, twin only (they read the planted truth and choose nothing): per target, the share of its row residual
that the planted taste (``_taste.planted_parts``) explains, a per-row signal-to-noise figure; per row of the table,
``r personal``, the correlation of ``c t`` with the oracle's personal residual on the test grid (``taste_ceiling``'s
"true personal").
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from _taste import GridSetup, load_test_grid, planted_parts, residual_factors  # noqa: E402

from kuairec_pipeline.evaluation.metrics import distinct_pairs, sparse_ndcg_at_k  # noqa: E402
from kuairec_pipeline.evaluation.ranking_metrics import POSITIVE_WATCH_RATIO  # noqa: E402
from kuairec_pipeline.evaluation.tag_profile import UserTagProfileRecommender, tag_weights  # noqa: E402
from kuairec_pipeline.models.biases import aggregate_pairs, fit_biases  # noqa: E402
from kuairec_pipeline.models.data import Interactions  # noqa: E402

ENGAGED_BIAS_L2 = 5.0  # ridge of the engaged target's own biases: user_video_bias's default
COLLAPSED = 1e-6  # a term whose largest value on the val rows is below this (residual sd units) has collapsed to 0
Term = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (users, videos) -> float64 taste per pair


@dataclass(frozen=True)
class Target:
    """The training rows a taste model fits and their residual after the target's own bias model."""

    label: str  # "scaled" or "engaged>t"
    users: np.ndarray  # int32 (n_rows,)
    videos: np.ndarray  # int32 (n_rows,)
    residual: np.ndarray  # float64 (n_rows,)


@dataclass(frozen=True)
class Scored:
    """One taste term added to the bias model, judged on val (chooses) and test (reports)."""

    taste: str  # "tag", "MF", "MF-WR", "tag + MF"
    target: str
    setting: str
    coefficients: tuple[float, ...]
    val_ndcg: float
    val_rmse: float
    test_ndcg: float
    test_mae: float
    personal_corr: float  # correlation of c t with the oracle's personal residual on the test grid (diagnostic)
    seconds: float  # fitting the taste term (shared machine: noisy)

    @property
    def kind(self) -> str:
        """The target without its threshold: thresholds are a setting chosen on val."""
        return self.target.split(">")[0]


def scaled_target(setup: GridSetup) -> Target:
    """All training rows, scaled target minus the bias model's prediction."""
    train, bias = setup.data.training.train, setup.bias
    # The unclipped bias sum, as user_tag_profile takes its residual (predict would clip it to [0, 1]).
    prediction = bias.user_part[train.user].astype(np.float64) + bias.video_part[train.video]
    residual = train.target.astype(np.float64) - prediction
    return Target("scaled", train.user, train.video, residual)


def engaged_target(setup: GridSetup, threshold: float) -> Target:
    """Training rows with watch ratio > ``threshold`` (> 0), log watch ratio minus its own ridge biases."""
    train, training = setup.data.training.train, setup.data.training
    keep = train.watch_ratio > threshold
    # Shifted by log(threshold) so every value is > 0, as aggregate_pairs' zero-safe sums require; biases absorb it.
    value = np.log(train.watch_ratio[keep].astype(np.float64)) - np.log(threshold)
    rows = Interactions(
        user=train.user[keep],
        video=train.video[keep],
        target=value.astype(np.float32),
        watch_ratio=train.watch_ratio[keep],
        timestamp=train.timestamp[keep],
        passes_filter=train.passes_filter[keep],
    )
    global_bias, user_bias, video_bias = fit_biases(
        aggregate_pairs(rows, training.n_users, training.n_videos), training.n_videos, ENGAGED_BIAS_L2
    )
    residual = value - (global_bias + user_bias[rows.user] + video_bias[rows.video])
    return Target(f"engaged>{threshold:g}", rows.user, rows.video, residual)


def planted_share(profile: str, seed: int, target: Target) -> str:
    """How much of a target's row residual the twin's planted taste explains: a per-row signal-to-noise figure."""
    parts = planted_parts(profile, seed, target.users, target.videos)
    design = np.column_stack([*parts.values(), np.ones_like(target.residual)])
    fitted = design @ np.linalg.lstsq(design, target.residual, rcond=None)[0]
    explained = 1.0 - np.var(target.residual - fitted) / np.var(target.residual)
    factors = np.corrcoef(parts["latent factors"], target.residual)[0, 1]
    tags = np.corrcoef(parts["user x tag affinity"], target.residual)[0, 1]
    return (
        f"residual sd {target.residual.std():.3f}; planted taste explains R^2 {explained:.3f} of it "
        f"(correlation with the planted factors {factors:.3f}, with the user x tag part {tags:.3f})"
    )


def tag_sums(target: Target, weights: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(residual sums, row totals) per (user, tag), float64 (n_users, n_tags): the affinity before shrinkage."""
    ones = np.ones_like(target.residual)
    sums = sp.csr_matrix((target.residual, (target.users, target.videos)), shape=shape) @ weights
    totals = sp.csr_matrix((ones, (target.users, target.videos)), shape=shape) @ weights
    return np.asarray(sums, dtype=np.float64), np.asarray(totals, dtype=np.float64)


def shrunken_affinity(sums: np.ndarray, totals: np.ndarray, shrinkage: float) -> np.ndarray:
    """``sums / (totals + shrinkage)``, 0 where the denominator is 0 (user_tag_profile's a_ut)."""
    denominator = totals + shrinkage
    return np.divide(sums, denominator, out=np.zeros_like(sums), where=denominator > 0)


def row_dot(left: np.ndarray, right: np.ndarray) -> Term:
    """The term ``left[u] . right[v]``."""
    return lambda users, videos: np.einsum("ij,ij->i", left[users], right[videos])


class Judge:
    """Adds taste terms to the bias model with coefficients fitted on val and scores them on val and test."""

    def __init__(self, setup: GridSetup) -> None:
        self.setup = setup
        training = setup.data.training
        self.val = training.val
        self.val_bias = setup.bias.predict(self.val.user, self.val.video).astype(np.float64)
        self.pairs = distinct_pairs(self.val, training.n_videos)
        self.pair_bias = setup.bias.predict(self.pairs.user, self.pairs.video).astype(np.float64)
        self.personal = setup.truth - setup.truth_additive()

    def __call__(self, taste: str, target: str, setting: str, terms: list[Term], seconds: float) -> Scored:
        """One least-squares coefficient per term on the val rows' residual, then val and test metrics."""
        val, setup = self.val, self.setup
        design = np.column_stack([term(val.user, val.video) for term in terms])
        # Factors shrunk to ~0 by a large penalty would get a huge coefficient on what is left of them: count them 0.
        live = np.abs(design).max(axis=0) >= COLLAPSED
        coefficients = np.zeros(len(terms))
        coefficients[live] = np.linalg.lstsq(design[:, live], val.target - self.val_bias, rcond=None)[0]
        if not live.all() and "(collapsed)" not in setting:
            setting += " (collapsed)"
        predicted = np.clip(self.val_bias + design @ coefficients, 0.0, 1.0)  # clipped like every model's score
        val_rmse = float(np.sqrt(np.mean((predicted - val.target) ** 2)))
        pair_scores = (
            self.pair_bias + np.column_stack([t(self.pairs.user, self.pairs.video) for t in terms]) @ coefficients
        )
        val_ndcg = sparse_ndcg_at_k(self.pairs, pair_scores, 10, POSITIVE_WATCH_RATIO, setup.data.n_videos)[0]
        cell_terms = np.column_stack([term(setup.cell_users, setup.cell_videos) for term in terms])
        taste_cells = cell_terms @ coefficients
        test_ndcg, test_mae = setup.test_metrics(setup.on_grid(setup.bias_cells + taste_cells))
        corr = float(np.corrcoef(taste_cells, self.personal)[0, 1]) if taste_cells.std() > 0 else 0.0
        values = (val_ndcg, val_rmse, test_ndcg, test_mae, corr, seconds)
        return Scored(taste, target, setting, tuple(coefficients), *values)


def by_val_ndcg(scored: Scored) -> float:
    """Choice key: val ndcg@10, higher is better (NaN never wins)."""
    return -np.inf if np.isnan(scored.val_ndcg) else scored.val_ndcg


def by_val_rmse(scored: Scored) -> float:
    """Choice key: minus val rmse, so that higher is better."""
    return -scored.val_rmse


def target_rows(args: argparse.Namespace, setup: GridSetup, judge: Judge, target: Target, seed: int) -> list[Scored]:
    """Every tag and MF setting on one target, then ``tag + MF`` of the two each val rule chooses."""
    weights = tag_weights(setup.data.training.video_tag_multi_hot).astype(np.float64)
    scored: list[tuple[Scored, Term]] = []
    started = time.perf_counter()
    sums, totals = tag_sums(target, weights, setup.shape)
    seconds = time.perf_counter() - started
    for shrinkage in args.shrinkages:
        term = row_dot(shrunken_affinity(sums, totals, shrinkage), weights)
        scored.append((judge("tag", target.label, f"s {shrinkage:g}", [term], seconds), term))
    standardized = target.residual / target.residual.std()
    for rank in args.ranks:
        for weighted, grid in ((False, args.fixed_l2), (True, args.wr_lambda)):
            for penalty in grid:
                started = time.perf_counter()
                factors = residual_factors(
                    target.users, target.videos, standardized, setup.shape, rank, penalty, seed, weighted
                )
                seconds = time.perf_counter() - started
                taste, name = ("MF-WR", "lambda") if weighted else ("MF", "l2")
                term = row_dot(*factors)
                scored.append((judge(taste, target.label, f"rank {rank}, {name} {penalty:g}", [term], seconds), term))
    combined = []
    for key in (by_val_ndcg, by_val_rmse):  # the tag and the MF term each rule picks, joined
        tag = max((pair for pair in scored if pair[0].taste == "tag"), key=lambda pair: key(pair[0]))
        mf = max((pair for pair in scored if pair[0].taste != "tag"), key=lambda pair: key(pair[0]))
        setting = f"{tag[0].setting} + {mf[0].taste} {mf[0].setting}"
        if setting not in {row.setting for row in combined}:
            seconds = tag[0].seconds + mf[0].seconds
            combined.append(judge("tag + MF", target.label, setting, [tag[1], mf[1]], seconds))
    return [row for row, _ in scored] + combined


def one_seed(args: argparse.Namespace, seed: int) -> tuple[list[Scored], float, float]:
    """Every (taste model, target, setting) of one twin seed; returns them with the bias and oracle test ndcg@10."""
    setup = load_test_grid(args.home, args.profile, seed)
    training = setup.data.training
    (base, base_mae), (ceiling, ceiling_mae) = setup.test_metrics(setup.bias), setup.test_metrics(setup.oracle)
    # The tag estimator here must be the package's personal baseline: same affinity at its chosen shrinkage.
    package = UserTagProfileRecommender().fit(training)
    scaled = scaled_target(setup)
    weights = tag_weights(training.video_tag_multi_hot).astype(np.float64)
    ours = shrunken_affinity(*tag_sums(scaled, weights, setup.shape), package.shrinkage)
    if not np.allclose(ours, package.affinity, atol=1e-5):
        difference = np.abs(ours - package.affinity).max()
        raise RuntimeError(f"the tag affinity here disagrees with user_tag_profile's by up to {difference:.2e}")
    package_ndcg, package_mae = setup.test_metrics(package)
    train = training.train
    user_rows = np.bincount(train.user, minlength=training.n_users)
    video_rows = np.bincount(train.video, minlength=training.n_videos)
    grid_video_rows = video_rows[np.unique(setup.cell_videos)]
    print(f"\n### seed {seed}\n")
    print(
        f"train {len(train):,} rows; val {len(training.val):,} rows of {np.unique(training.val.user).size} users. "
        f"Training rows per user: median {np.median(user_rows):.0f}; per video: median {np.median(video_rows):.0f}, "
        f"per test-grid video: median {np.median(grid_video_rows):.0f}, 5% at most "
        f"{np.quantile(grid_video_rows, 0.05):.0f}.\n"
        f"Test: user_video_bias ndcg@10 {base:.4f}, mae {base_mae:.4f}; oracle {ceiling:.4f}, mae {ceiling_mae:.4f}; "
        f"user_tag_profile (package; shrinkage {package.shrinkage:g} by val rmse) {package_ndcg:.4f}, mae "
        f"{package_mae:.4f}, gap closed {(package_ndcg - base) / (ceiling - base):.1%}"
    )
    judge = Judge(setup)
    targets = [scaled] + [engaged_target(setup, threshold) for threshold in args.thresholds]
    for target in targets:
        print(f"- {target.label}: {target.residual.size:,} rows, {planted_share(args.profile, seed, target)}")
    results = [row for target in targets for row in target_rows(args, setup, judge, target, seed)]
    return results, base, ceiling


def gap(ndcg: float, base: float, ceiling: float) -> float:
    """Share of the bias-to-oracle ndcg@10 gap closed."""
    return (ndcg - base) / (ceiling - base)


def print_rows(results: list[Scored], base: float, ceiling: float) -> None:
    """Every row measured on one seed."""
    print(
        "\n| taste | target | setting | c | val ndcg@10 | val rmse | test ndcg@10 | test mae | gap closed "
        "| r personal | fit s |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        c = ", ".join(f"{value:.3g}" for value in r.coefficients)
        print(
            f"| {r.taste} | {r.target} | {r.setting} | {c} | {r.val_ndcg:.4f} | {r.val_rmse:.5f} | {r.test_ndcg:.4f} "
            f"| {r.test_mae:.4f} | {gap(r.test_ndcg, base, ceiling):.1%} | {r.personal_corr:.3f} | {r.seconds:.1f} |"
        )


TASTES = ("tag", "MF", "MF-WR", "tag + MF")
KINDS = ("scaled", "engaged")
CHOICES = (("val ndcg@10", by_val_ndcg), ("val rmse", by_val_rmse), ("best on test (bound)", None))


def chosen(results: list[Scored], taste: str, kind: str, choice) -> Scored:
    """The row a choice rule picks among one taste model's rows on one target kind (all thresholds)."""
    rows = [r for r in results if r.taste == taste and r.kind == kind]
    return max(rows, key=choice or (lambda r: r.test_ndcg))


def print_summary(results: list[Scored], base: float, ceiling: float) -> dict[tuple[str, str, str], float]:
    """Per taste model and target kind, the row each choice rule picks; returns their gaps closed."""
    print("\n| taste | target kind | chosen by | target | setting | test ndcg@10 | test mae | gap closed |")
    print("|---|---|---|---|---|---:|---:|---:|")
    gaps = {}
    for taste in TASTES:
        for kind in KINDS:
            for label, choice in CHOICES:
                r = chosen(results, taste, kind, choice)
                gaps[taste, kind, label] = gap(r.test_ndcg, base, ceiling)
                print(
                    f"| {taste} | {kind} | {label} | {r.target} | {r.setting} | {r.test_ndcg:.4f} | {r.test_mae:.4f} "
                    f"| {gaps[taste, kind, label]:.1%} |"
                )
    return gaps


def time_full(args: argparse.Namespace) -> None:
    """Seconds of the residual MF at KuaiRec's full size (benchmarks/_data.py's arrays, not the twin): one run of 1
    and one of 3 sweeps, whose difference / 2 is a sweep and the rest the setup (building the sparse matrices)."""
    import resource

    from _data import timed_training_data

    data = timed_training_data(1.0)
    train = data.train
    residual = train.target.astype(np.float64) - train.target.mean()
    shape = (data.n_users, data.n_videos)
    for rank in args.ranks:
        seconds = []
        for sweeps in (1, 3):
            started = time.perf_counter()
            residual_factors(train.user, train.video, residual, shape, rank, 0.1, 0, True, sweeps)
            seconds.append(time.perf_counter() - started)
        sweep = (seconds[1] - seconds[0]) / 2
        print(
            f"rank {rank}, {len(train):,} rows: setup {seconds[0] - sweep:.1f} s, one sweep {sweep:.1f} s: "
            f"{seconds[0] - sweep + 10 * sweep:.0f} s for 10 sweeps"
        )
    print(f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="demo", choices=("tiny", "demo", "full"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[11])
    parser.add_argument("--home", type=Path, default=Path("/tmp/kuairec-taste-levers"))
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    parser.add_argument("--shrinkages", type=float, nargs="+", default=[3.0, 10.0, 30.0, 100.0, 300.0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--fixed-l2", type=float, nargs="+", default=[3.0, 10.0, 30.0, 50.0, 100.0])
    parser.add_argument("--wr-lambda", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.2, 0.3])
    parser.add_argument("--time-full", action="store_true", help="only time one MF sweep at full size")
    args = parser.parse_args(argv)
    if any(threshold <= 0 for threshold in args.thresholds):
        parser.error("thresholds must be > 0 (the engaged target is a log)")

    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") + (" (uncommitted changes)" if git("status", "--porcelain") else "")
    now = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    if args.time_full:
        print(f"residual MF at KuaiRec's full size (benchmarks/_data.py arrays), commit {commit}, {now}")
        time_full(args)
        return 0
    print(f"profile {args.profile}, commit {commit}, {now}")
    print(
        f"thresholds {args.thresholds}, shrinkages {args.shrinkages}, ranks {args.ranks}, fixed l2 {args.fixed_l2}, "
        f"weighted lambda {args.wr_lambda}"
    )
    all_gaps = []
    for seed in args.seeds:
        results, base, ceiling = one_seed(args, seed)
        print_rows(results, base, ceiling)
        all_gaps.append(print_summary(results, base, ceiling))
    if len(args.seeds) > 1:
        print(f"\n### mean (min) gap closed over seeds {' '.join(map(str, args.seeds))}\n")
        print("| taste | target kind | " + " | ".join(label for label, _ in CHOICES) + " |")
        print("|---|---|" + "---:|" * len(CHOICES))
        for taste in TASTES:
            for kind in KINDS:
                cells = [[gaps[taste, kind, label] for gaps in all_gaps] for label, _ in CHOICES]
                print(f"| {taste} | {kind} | " + " | ".join(f"{np.mean(c):.1%} ({min(c):.1%})" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
