"""Checks on the prepared data, run inside the asset that builds the table, *before* its file is written.

A failed blocking check stops the step before the IO manager renames anything into place, so the previous good file
stays where it was (a Dagster ``@asset_check`` runs only after the new file has replaced the old one). The run's
final error is a :class:`BlockingCheckError` naming the asset, its file, the check and what it found (columns and
example ids). The results still show in the UI as the asset's checks (``check_specs``); non-blocking checks only warn.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, Failure, MetadataValue

from kuairec_pipeline.features.checks import MAX_MISSING_SIDE_SHARE, CheckOutcome


@dataclass(frozen=True)
class CheckDef:
    """One named check of an asset: blocking (the table is refused) or a warning."""

    name: str
    description: str
    blocking: bool = True

    def spec(self, asset: str) -> AssetCheckSpec:
        return AssetCheckSpec(self.name, asset=asset, description=self.description, blocking=self.blocking)


FILTERED_RATIOS_CHECKS = (
    CheckDef("splits_not_empty", "Train and val have rows, test has rows passing the filter."),
    CheckDef("targets_in_unit_interval", "Targets in [0, 1], no nulls; train/val pass the filter."),
    CheckDef(
        "ids_in_range",
        "Every user and video id lies within the ids of the side files (raw_users, "
        "raw_videos): models use ids as row indices.",
    ),
    CheckDef("train_test_disjoint", "No (user, video) pair is both trained on and tested."),
    CheckDef("validation_after_training", "Validation rows are strictly later than training rows."),
)
USER_FEATURES_CHECKS = (
    CheckDef("user_features_valid", "Unique ids, categorical ids >= 0, numerics in [0, 1]."),
    CheckDef(
        "user_side_coverage",
        f"Warns when more than {MAX_MISSING_SIDE_SHARE:.0%} of the users with "
        "interactions have no row in user_features.csv.",
        blocking=False,
    ),
)
VIDEO_FEATURES_CHECKS = (
    CheckDef("video_features_valid", "Unique ids, categorical ids >= 0, numerics in [0, 1]."),
    CheckDef(
        "video_side_coverage",
        f"Warns when more than {MAX_MISSING_SIDE_SHARE:.0%} of the videos with "
        "interactions have no row in item_categories.csv.",
        blocking=False,
    ),
)


def specs(asset: str, checks: Sequence[CheckDef]) -> list[AssetCheckSpec]:
    """The ``check_specs`` of an asset that runs ``checks`` itself."""
    return [check.spec(asset) for check in checks]


def _metadata_value(value: int | float | str) -> MetadataValue:
    if isinstance(value, bool) or isinstance(value, int):
        return MetadataValue.int(int(value))
    if isinstance(value, float):
        return MetadataValue.float(value)
    return MetadataValue.text(str(value))


class BlockingCheckError(Failure):
    """A blocking check failed: the table was not written. The message names the asset's file, the check and
    what it found (column, example ids)."""

    def __init__(self, asset: str, file_name: str, failures: Mapping[str, CheckOutcome]) -> None:
        self.asset, self.file_name, self.failures = asset, file_name, dict(failures)
        found = "; ".join(f"{name}: {outcome.description}" for name, outcome in failures.items())
        message = (
            f"{len(failures)} blocking check(s) of {asset} failed, so {file_name} was not written (the "
            f"previous file, if any, is kept and downstream steps do not run): {found}"
        )
        super().__init__(description=message, metadata={"file": file_name, "failed_checks": ", ".join(failures)})
        self.message = message

    def __str__(self) -> str:
        return self.message


def evaluate(
    asset: str, file_name: str, checks: Sequence[CheckDef], outcomes: Mapping[str, CheckOutcome]
) -> Iterator[AssetCheckResult]:
    """Yield one result per check, then raise :class:`BlockingCheckError` if a blocking one failed.

    Parameters
    ----------
    asset : str
        The asset key the checks belong to.
    file_name : str
        The asset's file (``filtered_ratios.parquet``), named in the error.
    checks : sequence of CheckDef
        The asset's checks, in the order of its ``check_specs``.
    outcomes : mapping of str to CheckOutcome
        The outcome of every check in ``checks``, by name.

    Raises
    ------
    BlockingCheckError
        After every result was yielded, when at least one blocking check failed.
    """
    failures = {}
    for check in checks:
        outcome = outcomes[check.name]
        yield AssetCheckResult(
            check_name=check.name,
            asset_key=asset,
            passed=bool(outcome.passed),
            description=outcome.description,
            metadata={key: _metadata_value(value) for key, value in outcome.metadata.items()},
            severity=AssetCheckSeverity.ERROR if check.blocking else AssetCheckSeverity.WARN,
        )
        if check.blocking and not outcome.passed:
            failures[check.name] = outcome
    if failures:
        raise BlockingCheckError(asset, file_name, failures)
