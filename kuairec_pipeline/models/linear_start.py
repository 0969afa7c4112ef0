"""Starting a model from the fitted linear model: ALS's and the two-tower's ``linear_start`` and the sequential
models' ``fixed_start`` hold its prediction fixed under their own score (residual learning on a fixed base), so each
learns only what the linear model leaves. The pipeline passes the ``linear_baseline`` asset (registry ``inputs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar, Self

from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.linear import LinearRecommender


def linear_start(components: Mapping[str, object] | None, data: TrainingData, owner: str) -> LinearRecommender:
    """The linear model a network starts from (its ``fixed start``/``linear_start``): the fitted
    ``components["linear"]`` (the pipeline's ``linear_baseline`` asset), or, with ``components`` None, a
    LinearRecommender with its default config fitted on ``data`` here.

    Parameters
    ----------
    components : model name -> fitted model (the registry entry's inputs), or None to fit one.
    data : the training data (used only to fit when ``components`` is None).
    owner : the model asking, named in errors.

    Returns
    -------
    a fitted LinearRecommender.

    Raises
    ------
    KeyError
        If ``components`` holds no ``"linear"``.
    TypeError
        If it is no LinearRecommender.
    """
    if components is None:
        return LinearRecommender().fit(data)
    if "linear" not in components:
        raise KeyError(f"{owner} starts from the fitted 'linear' model, got only {sorted(components)}")
    start = components["linear"]
    if not isinstance(start, LinearRecommender):
        raise TypeError(f"{owner}'s start must be a LinearRecommender, got {type(start).__name__}")
    return start


class LinearStartHooks:
    """``fit`` and ``fit_from_components`` of a model that starts from the fitted linear model when its config's
    ``start_field`` is on (ALS and the two-tower: ``linear_start``; the sequential models: ``fixed_start``). The
    model implements ``_fit(data, start, progress)`` with ``start`` a fitted LinearRecommender or None."""

    start_field: ClassVar[str] = "linear_start"
    trains_with_lightning: ClassVar[bool] = False  # quiet Lightning's start-up notices in the pipeline's fit

    def fit(self, data: TrainingData, progress: Callable[[str], None] | None = None) -> Self:
        """Fit on ``data``; with the start on, a LinearRecommender (default config) is fitted here first as it.

        Parameters
        ----------
        data : the training data.
        progress : receives one line per epoch where the model trains by epochs; None for silence.

        Returns
        -------
        ``self``, fitted.
        """
        return self._fit(data, self._start(None, data), progress)  # type: ignore[attr-defined]

    def fit_from_components(
        self,
        components: Mapping[str, object],
        data: TrainingData,
        progress: Callable[[str], None] | None = None,
    ) -> Self:
        """Fit with the fitted ``components["linear"]`` as the start (ignored with the start off): the pipeline's
        path, so the start is the ``linear_baseline`` asset itself, not a second fit of it.

        Parameters
        ----------
        components : model name -> fitted model; needs ``"linear"`` (a LinearRecommender) with the start on.
        data : the training data.
        progress : as in :meth:`fit`.

        Returns
        -------
        ``self``, fitted.

        Raises
        ------
        KeyError, TypeError
            As :func:`linear_start`.
        """
        start = self._start(components, data)
        if not self.trains_with_lightning:
            return self._fit(data, start, progress)  # type: ignore[attr-defined]
        from kuairec_pipeline.models.progress import quiet_lightning_notices  # imports Lightning: only to train

        with quiet_lightning_notices():
            return self._fit(data, start, progress)  # type: ignore[attr-defined]

    def _start(self, components: Mapping[str, object] | None, data: TrainingData) -> LinearRecommender | None:
        if not getattr(self.config, self.start_field):  # type: ignore[attr-defined]
            return None
        return linear_start(components, data, self.name)  # type: ignore[attr-defined]
