"""Pure polars transforms: watch-ratio filtering and scaling, splits, user and video features. No Dagster here."""
