"""Min-max scaling of the watch ratio with training statistics (the original study's target)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST = "train", "val", "test"
# The held-out part of the validation window: no model fits, stops early or blends on it; the served model is
# chosen on it (features/ratios.py says which rows).
SPLIT_SELECTION = "selection"


@dataclass(frozen=True)
class TargetScaler:
    """target = clip((watch_ratio - minimum) / (maximum - minimum), 0, 1); statistics from training rows only."""

    minimum: float
    maximum: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.minimum) or not np.isfinite(self.maximum) or self.maximum <= self.minimum:
            raise ValueError(f"degenerate scaling range [{self.minimum}, {self.maximum}]")

    @property
    def span(self) -> float:
        return self.maximum - self.minimum

    def transform(self, watch_ratio: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(watch_ratio, dtype=np.float64) - self.minimum) / self.span, 0.0, 1.0)

    def transform_expr(self, column: str = "watch_ratio") -> pl.Expr:
        value = pl.col(column)
        # The ends map to exactly 0 and 1 without dividing: polars divides by a literal through its reciprocal,
        # which overflows for a subnormal span (0 * inf = NaN). Nulls and NaN pass through as before.
        return (
            pl.when(value <= self.minimum)
            .then(0.0)
            .when(value >= self.maximum)
            .then(1.0)
            .otherwise(((value - self.minimum) / self.span).clip(0.0, 1.0))
            .alias(column)
        )

    def inverse(self, target: np.ndarray) -> np.ndarray:
        return np.asarray(target, dtype=np.float64) * self.span + self.minimum

    @classmethod
    def fit(cls, training_watch_ratio: np.ndarray | pl.Series) -> TargetScaler:
        values = np.asarray(training_watch_ratio, dtype=np.float64)
        if values.size == 0:
            raise ValueError("cannot fit the target scaler on zero training rows")
        return cls(float(values.min()), float(values.max()))

    @classmethod
    def from_filtered_ratios(cls, filtered_ratios: pl.DataFrame) -> TargetScaler:
        """Recover the scaler from the ``filtered_ratios`` table: by definition min and max of its training rows."""
        train = filtered_ratios.filter(pl.col("split") == SPLIT_TRAIN)["watch_ratio"]
        return cls.fit(train.to_numpy())
