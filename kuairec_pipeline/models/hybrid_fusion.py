"""Late fusion: a blend of fitted models' predictions with weights fitted on the tuning validation slice.

    prediction = clip(intercept + sum_c w_c * prediction_c, 0, 1)

over the components named in the config (default: linear, calibrated ALS, two-tower and the sequential
transformer). The weights come from a small ridge-regularized, optionally non-negative least squares on the
components' *validation* predictions: the components fit the training rows (ALS calibrates on them in-sample), so
weighting them on the same rows would favour whichever overfits most. This generalises the earlier two-component
``hybrid`` (calibrated ALS + two-tower) of the original study's "late fusion" step.

Each component keeps its own rules: the pointwise prediction of a row (``predict_rows``, and so the rows the blend
is fitted on) takes the sequential model's prediction from its history strictly before the row's timestamp, and a
ranking (``score_all``) blends each component's ranking scores (the sequential model's state after the whole
training history). Fallbacks are the components' own (e.g. the sequential model's empty state for a user with no
history): every component is finite, so the blend is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
from scipy.optimize import nnls

from kuairec_pipeline.models import components as parts
from kuairec_pipeline.models.als import ALSConfig
from kuairec_pipeline.models.base import Recommender, stored_config
from kuairec_pipeline.models.data import Interactions, TrainingData
from kuairec_pipeline.models.errors import check_solver, not_fitted
from kuairec_pipeline.models.linear import LinearConfig
from kuairec_pipeline.models.sequential_config import SequentialConfig
from kuairec_pipeline.models.two_tower import TwoTowerConfig
from kuairec_pipeline.params import check, param

DEFAULT_COMPONENTS = ("linear", "als", "two_tower", "sequential")


@dataclass(frozen=True)
class HybridFusionConfig:
    """Hyperparameters of :class:`HybridFusionRecommender` (the components' own configs included); ranges are
    enforced on construction (``params.check``), the component names by ``__post_init__``."""

    # The pipeline's asset reads all four fitted bundles (its registry inputs) and blends the ones named here.
    components: tuple[str, ...] = param(
        DEFAULT_COMPONENTS,
        "Fitted models blended (distinct names; the asset reads all four).",
        choices=DEFAULT_COMPONENTS,
        run_config=False,
    )
    # Shrinks towards the intercept alone.
    l2: float = param(1e-4, "Ridge penalty on the blend weights (fitted on val), per validation row.", ge=0.0)
    non_negative: bool = param(True, "Keep every blend weight >= 0: a component never counts against its own score.")
    # Each component's config is used when fit() trains it; fit_from_components takes the fitted components' own.
    linear: LinearConfig = parts.component_config("linear", LinearConfig)
    als: ALSConfig = parts.component_config("ALS", ALSConfig)
    two_tower: TwoTowerConfig = parts.component_config("two-tower", TwoTowerConfig)
    sequential: SequentialConfig = parts.component_config("sequential", SequentialConfig)

    def __post_init__(self) -> None:
        names = tuple(self.components)
        object.__setattr__(self, "components", names)  # a JSON list comes back as a tuple
        check(self)
        if not names or len(set(names)) != len(names) or not set(names) <= set(parts.COMPONENT_CLASSES):
            raise ValueError(
                f"HybridFusionConfig.components must be distinct names from {sorted(parts.COMPONENT_CLASSES)}, "
                f"got {names!r}"
            )

    def component_configs(self) -> dict[str, Any]:
        """name -> config of every possible component."""
        return {name: getattr(self, name) for name in parts.COMPONENT_CLASSES}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HybridFusionConfig:
        """Inverse of ``dataclasses.asdict`` after a JSON round trip (unknown keys dropped).

        Parameters
        ----------
        values : the stored config: ``components``, ``l2``, ``non_negative`` and each component's nested dict.

        Returns
        -------
        HybridFusionConfig.
        """
        own = {key: values[key] for key in ("components", "l2", "non_negative") if key in values}
        nested = {
            name: parts.component_config_from_dict(name, values[name])
            for name in parts.COMPONENT_CLASSES
            if name in values
        }
        return cls(**own, **nested)


def fit_blend(predictions: np.ndarray, target: np.ndarray, l2: float, non_negative: bool) -> tuple[float, np.ndarray]:
    """(intercept, weights) minimizing mean squared error + l2 * |weights|^2 over rows of ``predictions``.

    The intercept is unpenalized: centring removes it, and the ridge rows extend the least-squares system
    (ridge regression, Hoerl & Kennard 1970; non-negative by Lawson & Hanson's NNLS).

    Parameters
    ----------
    predictions : float (n_rows, n_components), each component's prediction of the rows.
    target : float (n_rows,), the rows' scaled watch ratio.
    l2 : ridge penalty per row (>= 0).
    non_negative : constrain the weights to >= 0.

    Returns
    -------
    (intercept float, float64 (n_components,) weights).

    Raises
    ------
    SolverDivergedError
        If the solve gives a non-finite weight.
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    n_rows, n_components = predictions.shape
    means = predictions.mean(axis=0)
    target_mean = target.mean()
    design = np.vstack([predictions - means, np.sqrt(l2 * n_rows) * np.eye(n_components)])
    response = np.concatenate([target - target_mean, np.zeros(n_components)])
    if non_negative:
        weights, _ = nnls(design, response)
    else:
        weights = np.linalg.lstsq(design, response, rcond=None)[0]
    check_solver(weights, "blend least squares")
    return float(target_mean - means @ weights), weights


class HybridFusionRecommender(Recommender):
    """Late fusion of fitted components, blended with weights fitted on the tuning validation slice."""

    name: ClassVar[str] = "hybrid_fusion"
    time_aware: ClassVar[bool] = True  # pointwise predictions blend each component's predict_rows

    def __init__(self, config: HybridFusionConfig | None = None) -> None:
        self.config = config or HybridFusionConfig()
        self.n_users = 0
        self.n_videos = 0
        self.components: dict[str, Recommender] = {}
        self.intercept = 0.0
        self.weights = np.full(len(self.config.components), 1.0 / len(self.config.components))

    def fit(self, data: TrainingData) -> Self:
        """Train every component from this config, then fit the blend on ``data.val``.

        Parameters
        ----------
        data : the training data; ``data.val`` weighs the blend (equal weights when it is empty).

        Returns
        -------
        ``self``, fitted.
        """
        fitted = parts.fit_components(self.config.components, self.config.component_configs(), data)
        return self._set_components(fitted)._fit_blend(data)

    def fit_from_components(
        self,
        components: Mapping[str, Recommender],
        data: TrainingData,
        progress: Callable[[str], None] | None = None,
    ) -> Self:
        """Blend already fitted components, weighting them on ``data.val``.

        Parameters
        ----------
        components : name -> fitted model; must hold every name of ``config.components`` (more are ignored).
        data : the training data whose ``val`` rows fit the blend (and whose ``train`` rows are the history the
            sequential component reads before each val row).
        progress : unused (a least-squares solve has no epochs); accepted as every ``fit_from_components`` does.

        Returns
        -------
        ``self``, fitted; its config's component configs become the components' own.

        Raises
        ------
        KeyError, TypeError, ValueError
            As :func:`kuairec_pipeline.models.components.checked_components`.
        """
        chosen = parts.checked_components(dict(components), self.config.components)
        self.config = dataclasses.replace(self.config, **{name: m.config for name, m in chosen.items()})
        self.weights = np.full(len(self.config.components), 1.0 / len(self.config.components))
        self.intercept = 0.0
        return self._set_components(chosen)._fit_blend(data)

    def training_metadata(self) -> dict[str, Any]:
        """The fitted blend: ``blend_intercept`` and ``weight_<component>`` (asset metadata)."""
        weights = zip(self.config.components, self.weights, strict=True)
        return {"blend_intercept": float(self.intercept), **{f"weight_{name}": float(w) for name, w in weights}}

    def _set_components(self, components: dict[str, Recommender]) -> Self:
        self.components = parts.checked_components(components, self.config.components)
        first = next(iter(self.components.values()))
        self.n_users, self.n_videos = first.n_users, first.n_videos
        return self

    def _fitted(self) -> dict[str, Recommender]:
        if not self.components:
            raise not_fitted(self, "call fit(), fit_from_components() or from_arrays() first")
        return self.components

    def component_predictions(self, rows: Interactions, history: Interactions | None) -> np.ndarray:
        """Each component's pointwise prediction of ``rows`` (``predict_rows``: time-aware where the component
        is), in the order of ``config.components``.

        Parameters
        ----------
        rows : the interactions to score.
        history : the interactions a time-aware component may read before each row (the training split).

        Returns
        -------
        float32 (len(rows), n_components), scaled watch ratio.
        """
        return np.column_stack([model.predict_rows(rows, history) for model in self._fitted().values()])

    def _fit_blend(self, data: TrainingData) -> Self:
        # Without validation rows there is nothing honest to weight on: keep the equal-weight average.
        if len(data.val) > 0:
            predictions = self.component_predictions(data.val, data.train)
            self.intercept, self.weights = fit_blend(
                predictions, data.val.target, self.config.l2, self.config.non_negative
            )
        return self

    def _blend(self, predictions: list[np.ndarray]) -> np.ndarray:
        out = np.full_like(predictions[0], np.float32(self.intercept), dtype=np.float32)
        for weight, prediction in zip(self.weights, predictions, strict=True):
            out += np.float32(weight) * prediction
        return np.clip(out, 0.0, 1.0, out=out)

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        components = self._fitted()
        user_ids, video_ids = self._check_ids(user_ids, video_ids)
        return self._blend([model.score_all(user_ids, video_ids) for model in components.values()])

    def predict_rows(self, rows: Interactions, history: Interactions | None = None) -> np.ndarray:
        """The blend of each component's ``predict_rows`` (the sequential one reads ``history`` strictly before
        each row); ``history`` None: the blend of the grid predictions (:meth:`predict`).

        Returns
        -------
        float32 (len(rows),) in [0, 1].
        """
        if history is None:
            return self.predict(rows.user, rows.video)
        self._check_ids(rows.user, rows.video)
        predictions = self.component_predictions(rows, history)
        return self._blend([predictions[:, i] for i in range(predictions.shape[1])])

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = parts.store_components(self._fitted())
        arrays["blend_intercept"] = np.array(self.intercept, dtype=np.float64)
        arrays["blend_weights"] = np.asarray(self.weights, dtype=np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(HybridFusionConfig.from_dict(stored_config(arrays)))
        model._set_components(parts.restore_components(arrays, model.config.components, "hybrid_fusion bundle"))
        model.intercept = float(arrays["blend_intercept"])
        model.weights = np.asarray(arrays["blend_weights"], dtype=np.float64)
        return model
