"""The ALS model's config (split from :mod:`.als`, as the two-tower's and the sequential model's are)."""

from __future__ import annotations

from dataclasses import dataclass

from kuairec_pipeline.params import check, param


@dataclass(frozen=True)
class ALSConfig:
    """Hyperparameters of :class:`ALSRecommender`; ranges are enforced on construction (``params.check``)."""

    factors: int = param(
        16, "Latent dimensions per user and per video; each adds d^2 work to the per-user fit.", ge=1, le=1024
    )
    # Absolute, not per row: against ~1,500 rows x confidence ~4 per user at full scale, 100 is moderate, and it
    # keeps the in-sample calibration from trusting overfit scores.
    regularization: float = param(100.0, "L2 penalty on the factors in implicit's solves.", ge=0.0)
    # The scaled watch ratio is a graded implicit signal: every watched pair is a (weak) positive, and a higher
    # watch ratio says more surely that the user liked it, so it scales confidence instead of being a binary label.
    alpha: float = param(10.0, "Confidence of an observed pair = 1 + alpha * its mean scaled target.", ge=0.0)
    iterations: int = param(15, "ALS sweeps (users then videos).", ge=1, le=1000)
    use_conjugate_gradient: bool = param(True, "implicit's CG solver: much faster than Cholesky at 64 factors.")
    seed: int = param(
        0, "Seed of the factors' random initialization (one thread: a deterministic fit).", ge=0, le=2**32 - 1
    )
    num_threads: int = param(
        1, "implicit's OpenMP threads for fitting (0 = all cores); BLAS stays at 1.", ge=0, le=1024
    )
    calibration_l2: float = param(25.0, "Ridge on the calibration's user and video biases, in training rows.", ge=0.0)
    taste_l2: float = param(30.0, "Per-user ridge (rows) on the video taste features in the calibration.", gt=0.0)
    # 1,000 and 3,000 lost to 10,000 on demo (validation and test): implicit's factors carry exposure, not how much
    # is watched.
    factor_l2: float = param(
        10_000.0, "Per-user ridge (rows) on the unit-scaled video factors in the calibration.", gt=0.0
    )
    calibration_tolerance: float = param(
        1e-8, "Relative residual at which the bias fit's conjugate gradients stop.", gt=0.0
    )
    show_progress: bool = param(False, "implicit's tqdm bar over iterations.", run_config=False)
    # The calibration's biases and ridge taste re-fit the linear model's stages 1-2 less well than it does
    # (benchmarks/results/quality_*.md as of 67998a3 / 50528b0, in git history: als below user_tag_profile on demo
    # seed 12, 17.2% of the gap on full vs linear 35.9%); on top of the linear prediction only the factor part is
    # fitted, to what it leaves.
    linear_start: bool = param(
        True,
        "Calibrate on top of the linear model's prediction (fitted first; the pipeline's linear_baseline), held "
        "fixed: the biases, taste and factor coefficients fit what it leaves.",
    )

    def __post_init__(self) -> None:
        check(self)
