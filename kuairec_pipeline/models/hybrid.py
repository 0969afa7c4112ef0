"""A blend of the calibrated ALS and the two-tower predictions, weighted on the validation split.

    prediction = clip(intercept + w_als * als + w_two_tower * two_tower, 0, 1)

The weights come from a small ridge-regularized, optionally non-negative least squares on the components'
*validation* predictions: the components fit the training rows (ALS calibrates on them in-sample), so weighting
them on the same rows would favour whichever overfits most. The calibrated ALS already carries the user and video
biases, so no separate bias term is blended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
from scipy.optimize import nnls

from kuairec_pipeline.models.als import ALSConfig, ALSRecommender
from kuairec_pipeline.models.base import Recommender, stored_config
from kuairec_pipeline.models.data import Interactions, TrainingData
from kuairec_pipeline.models.errors import check_solver, not_fitted
from kuairec_pipeline.models.two_tower import TwoTowerConfig, TwoTowerRecommender, config_from_dict
from kuairec_pipeline.params import check, param

ALS_PREFIX = "als."
TWO_TOWER_PREFIX = "two_tower."
COMPONENTS = ("als", "two_tower")


@dataclass(frozen=True)
class HybridConfig:
    """Hyperparameters of :class:`HybridRecommender` (the components' own configs included); ranges are enforced on
    construction (``params.check``)."""

    als: ALSConfig = param(
        description="The ALS component's config (from the fitted component in the pipeline).",
        default_factory=ALSConfig,
        run_config=False,
    )
    two_tower: TwoTowerConfig = param(
        description="The two-tower component's config (from the fitted component in the pipeline).",
        default_factory=TwoTowerConfig,
        run_config=False,
    )
    # Shrinks towards the intercept alone.
    l2: float = param(1e-4, "Ridge penalty on the blend weights (fitted on val), per validation row.", ge=0.0)
    non_negative: bool = param(True, "Constrain blend weights to >= 0: a component never counts against its score.")

    def __post_init__(self) -> None:
        check(self)


def hybrid_config_from_dict(values: dict) -> HybridConfig:
    """Inverse of ``dataclasses.asdict`` after a JSON round trip (unknown keys dropped).

    Parameters
    ----------
    values : the stored config: ``l2``, ``non_negative`` and the nested ``als`` and ``two_tower`` dicts.

    Returns
    -------
    HybridConfig.
    """
    als_known = {f.name for f in dataclasses.fields(ALSConfig)}
    own = {key: values[key] for key in ("l2", "non_negative") if key in values}
    return HybridConfig(
        als=ALSConfig(**{k: v for k, v in values.get("als", {}).items() if k in als_known}),
        two_tower=config_from_dict(values.get("two_tower", {})),
        **own,
    )


def fit_blend(predictions: np.ndarray, target: np.ndarray, l2: float, non_negative: bool) -> tuple[float, np.ndarray]:
    """(intercept, weights) minimizing mean squared error + l2 * |weights|^2 over rows of ``predictions``.

    The intercept is unpenalized: centring removes it, and the ridge rows extend the least-squares system.
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


class HybridRecommender(Recommender):
    """Calibrated ALS + two-tower, blended with weights fitted on the validation split."""

    name: ClassVar[str] = "hybrid"

    def __init__(self, config: HybridConfig | None = None) -> None:
        self.config = config or HybridConfig()
        self.n_users = 0
        self.n_videos = 0
        self.als: ALSRecommender | None = None
        self.two_tower: TwoTowerRecommender | None = None
        self.intercept = 0.0
        self.weights = np.full(len(COMPONENTS), 1.0 / len(COMPONENTS))

    def fit(self, data: TrainingData) -> Self:
        """Train both components from this config, then fit the blend on ``data.val`` (late fusion).

        Parameters
        ----------
        data : the training data; ``data.val`` weighs the blend (equal weights when it is empty).

        Returns
        -------
        ``self``, fitted.
        """
        als = ALSRecommender(self.config.als).fit(data)
        two_tower = TwoTowerRecommender(self.config.two_tower).fit(data)
        return self._set_components(als, two_tower)._fit_blend(data.val)

    def fit_from_components(self, components: Mapping[str, Recommender], data: TrainingData) -> Self:
        """Blend already fitted components (``"als"`` and ``"two_tower"``), weighting them on ``data.val``.

        Parameters
        ----------
        components : model name -> fitted model; ``als`` an ALSRecommender, ``two_tower`` a TwoTowerRecommender,
            over the same id ranges.
        data : the training data whose ``val`` rows fit the blend.

        Returns
        -------
        ``self``, fitted; its config's ``als`` and ``two_tower`` fields become the components' configs.

        Raises
        ------
        ValueError
            If a component is missing or of another class, or the components disagree on the id ranges.
        """
        als, two_tower = components.get("als"), components.get("two_tower")
        if not isinstance(als, ALSRecommender) or not isinstance(two_tower, TwoTowerRecommender):
            raise ValueError(f"the hybrid needs fitted 'als' and 'two_tower' components, got {dict(components)!r}")
        self.config = dataclasses.replace(self.config, als=als.config, two_tower=two_tower.config)
        return self._set_components(als, two_tower)._fit_blend(data.val)

    @classmethod
    def from_components(
        cls, als: ALSRecommender, two_tower: TwoTowerRecommender, data: TrainingData, config: HybridConfig | None = None
    ) -> Self:
        """``cls(config).fit_from_components({"als": als, "two_tower": two_tower}, data)``.

        Returns
        -------
        HybridRecommender, fitted.

        Raises
        ------
        ValueError
            If the components disagree on the id ranges.
        """
        return cls(config).fit_from_components({"als": als, "two_tower": two_tower}, data)

    def _set_components(self, als: ALSRecommender, two_tower: TwoTowerRecommender) -> Self:
        if (als.n_users, als.n_videos) != (two_tower.n_users, two_tower.n_videos):
            raise ValueError(
                f"components disagree on the id space: ALS {als.n_users}x{als.n_videos}, "
                f"two-tower {two_tower.n_users}x{two_tower.n_videos}"
            )
        self.als, self.two_tower = als, two_tower
        self.n_users, self.n_videos = als.n_users, als.n_videos
        return self

    def component_predictions(self, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
        """Each component's prediction for the pairs, in the order of ``COMPONENTS``.

        Parameters
        ----------
        user_ids, video_ids : int (n,) paired ids.

        Returns
        -------
        float32 (n, 2), scaled watch ratio.

        Raises
        ------
        NotFittedError, UnknownIdError
            As :meth:`Recommender.predict`.
        """
        als, two_tower = self._components()
        return np.column_stack([als.predict(user_ids, video_ids), two_tower.predict(user_ids, video_ids)])

    def _fit_blend(self, rows: Interactions) -> Self:
        # Without validation rows there is nothing honest to weight on: keep the equal-weight average.
        if len(rows) > 0:
            predictions = self.component_predictions(rows.user, rows.video)
            self.intercept, self.weights = fit_blend(predictions, rows.target, self.config.l2, self.config.non_negative)
        return self

    def _components(self) -> tuple[ALSRecommender, TwoTowerRecommender]:
        if self.als is None or self.two_tower is None:
            raise not_fitted(self, "call fit(), from_components() or from_arrays() first")
        return self.als, self.two_tower

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        als, two_tower = self._components()
        user_ids, video_ids = self._check_ids(user_ids, video_ids)
        scores = als.score_all(user_ids, video_ids)
        scores *= np.float32(self.weights[0])
        scores += np.float32(self.weights[1]) * two_tower.score_all(user_ids, video_ids)
        scores += np.float32(self.intercept)
        return np.clip(scores, 0.0, 1.0, out=scores)

    def to_arrays(self) -> dict[str, np.ndarray]:
        als, two_tower = self._components()
        arrays = {ALS_PREFIX + key: value for key, value in als.bundle().items()}
        arrays.update({TWO_TOWER_PREFIX + key: value for key, value in two_tower.bundle().items()})
        arrays["blend_intercept"] = np.array(self.intercept, dtype=np.float64)
        arrays["blend_weights"] = np.asarray(self.weights, dtype=np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        def component(prefix: str) -> dict[str, np.ndarray]:
            return {key[len(prefix) :]: value for key, value in arrays.items() if key.startswith(prefix)}

        model = cls(hybrid_config_from_dict(stored_config(arrays)))
        model._set_components(
            ALSRecommender.from_bundle(component(ALS_PREFIX), where="hybrid bundle"),
            TwoTowerRecommender.from_bundle(component(TWO_TOWER_PREFIX), where="hybrid bundle"),
        )
        model.intercept = float(arrays["blend_intercept"])
        model.weights = np.asarray(arrays["blend_weights"], dtype=np.float64)
        return model
