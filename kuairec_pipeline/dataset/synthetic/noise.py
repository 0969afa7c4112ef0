"""The watch-ratio observation model of the twin: draw a view's watch ratio from its log engagement ``eta``,
and compute the exact moments the planted truth needs (no Monte Carlo).

The model is a mixture (see ``WatchRatioModel``): zero, swipe ~ Uniform(0, b), engaged ~ LogNormal(eta, s),
replay ~ Pareto(x_m, alpha) truncated at H. Every moment below is a weighted sum of per-component closed forms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, ndtr

from kuairec_pipeline.dataset.synthetic.config import WatchRatioModel


@dataclass(frozen=True)
class MixtureWeights:
    zero: np.ndarray
    swipe: np.ndarray
    replay: np.ndarray
    engaged: np.ndarray


def mixture_weights(eta: np.ndarray, in_small: np.ndarray | bool, model: WatchRatioModel) -> MixtureWeights:
    """Probability of each component for each view; ``in_small`` marks views of the forced-exposure feed."""
    centred = np.asarray(eta, dtype=np.float64) - model.eta_reference
    in_small = np.asarray(in_small, dtype=bool)
    p_zero = expit(model.zero_logit - model.zero_slope * centred)
    p_swipe = expit(
        model.swipe_logit + np.where(in_small, model.small_swipe_logit_shift, 0.0) - model.swipe_slope * centred
    )
    p_replay = expit(
        model.replay_logit + np.where(in_small, model.small_replay_logit_shift, 0.0) + model.replay_slope * centred
    )
    played = 1.0 - p_zero
    kept = played * (1.0 - p_swipe)  # neither zero nor swipe
    return MixtureWeights(zero=p_zero, swipe=played * p_swipe, replay=kept * p_replay, engaged=kept * (1.0 - p_replay))


def _pareto_normaliser(model: WatchRatioModel) -> float:
    # Mass of the untruncated Pareto below replay_max.
    return 1.0 - (model.replay_min / model.replay_max) ** model.replay_alpha


def _pareto_partial_mean(upper: float, model: WatchRatioModel) -> float:
    """E[X 1{X <= upper}] of the truncated Pareto, for replay_min <= upper <= replay_max."""
    alpha, x_m = model.replay_alpha, model.replay_min
    if abs(alpha - 1.0) < 1e-12:
        integral = x_m * np.log(upper / x_m)
    else:
        integral = alpha * x_m**alpha * (upper ** (1.0 - alpha) - x_m ** (1.0 - alpha)) / (1.0 - alpha)
    return integral / _pareto_normaliser(model)


def _pareto_cdf(x: float, model: WatchRatioModel) -> float:
    if x <= model.replay_min:
        return 0.0
    return min(1.0, (1.0 - (model.replay_min / x) ** model.replay_alpha) / _pareto_normaliser(model))


@dataclass(frozen=True)
class PlantedMoments:
    expected_watch_ratio: np.ndarray  # E[wr]
    expected_watch_ratio_le3: np.ndarray  # E[wr | wr <= 3]
    prob_watch_ratio_gt2: np.ndarray  # P(wr > 2)


def planted_moments(eta: np.ndarray, in_small: np.ndarray | bool, model: WatchRatioModel) -> PlantedMoments:
    """Exact E[wr], E[wr | wr <= cap] and P(wr > 2) of one view with log engagement ``eta``."""
    eta = np.asarray(eta, dtype=np.float64)
    weights = mixture_weights(eta, in_small, model)
    sigma = model.engaged_sigma
    cap = model.max_watch_ratio_for_target
    log_cap, log_two = np.log(cap), np.log(2.0)
    swipe_mean = model.swipe_max / 2.0
    lognormal_mean = np.exp(eta + sigma * sigma / 2.0)
    replay_mean = _pareto_partial_mean(model.replay_max, model)

    mean = weights.swipe * swipe_mean + weights.engaged * lognormal_mean + weights.replay * replay_mean

    # Partial expectations below the cap. The swipe component lies wholly below it (swipe_max < cap).
    engaged_partial = lognormal_mean * ndtr((log_cap - eta - sigma * sigma) / sigma)
    replay_partial = _pareto_partial_mean(cap, model) if cap > model.replay_min else 0.0
    partial = weights.swipe * swipe_mean + weights.engaged * engaged_partial + weights.replay * replay_partial
    prob_le_cap = (
        weights.zero
        + weights.swipe
        + weights.engaged * ndtr((log_cap - eta) / sigma)
        + weights.replay * _pareto_cdf(cap, model)
    )

    swipe_above_two = max(0.0, 1.0 - 2.0 / model.swipe_max) if model.swipe_max > 2.0 else 0.0
    prob_gt2 = (
        weights.swipe * swipe_above_two
        + weights.engaged * (1.0 - ndtr((log_two - eta) / sigma))
        + weights.replay * (1.0 - _pareto_cdf(2.0, model))
    )
    return PlantedMoments(mean, partial / prob_le_cap, prob_gt2)


def sample_watch_ratio(
    eta: np.ndarray, in_small: np.ndarray | bool, model: WatchRatioModel, rng: np.random.Generator
) -> np.ndarray:
    """One watch ratio per view, drawn from the mixture (vectorized; ~4 random numbers per view)."""
    eta = np.asarray(eta, dtype=np.float64)
    n = eta.shape[0]
    weights = mixture_weights(eta, in_small, model)
    pick = rng.random(n)
    value_uniform = rng.random(n)
    normal = rng.standard_normal(n)

    engaged = np.exp(eta + model.engaged_sigma * normal)
    swipe = model.swipe_max * value_uniform
    # Inverse CDF of the truncated Pareto.
    replay = model.replay_min * (1.0 - value_uniform * _pareto_normaliser(model)) ** (-1.0 / model.replay_alpha)

    zero_edge = weights.zero
    swipe_edge = zero_edge + weights.swipe
    replay_edge = swipe_edge + weights.replay
    return np.where(
        pick < zero_edge, 0.0, np.where(pick < swipe_edge, swipe, np.where(pick < replay_edge, replay, engaged))
    )
