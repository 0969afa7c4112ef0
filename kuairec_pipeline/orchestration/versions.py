"""Code versions of the assets: a digest of the source files their logic lives in.

Dagster compares an asset's ``code_version`` with the one its last materialization recorded, so after a change to
``features/ratios.py`` the UI marks ``filtered_ratios`` (and, through it, what is downstream) as stale without anyone
remembering to bump a number. Reading files, not importing them, keeps this cheap.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.util import find_spec
from pathlib import Path

_PACKAGE = "kuairec_pipeline"
_INGEST = (
    "dataset.loader",
    "dataset.schema",
    "dataset.source",
    "dataset.archive",
    "dataset.download",
    "orchestration.assets.ingest",
)
_MODEL_BASE = (
    "models.base",
    "models.bundle",
    "models.errors",
    "models.data",
    "models.data_store",
    "models.threads",
    "models.hooks",
    "models.registry",
    "params",
    "provenance",
    "orchestration.assets.train",
    "orchestration.config_gen",
)
# The modules whose code decides each asset's output; an asset not listed is versioned by the whole package.
ASSET_MODULES: dict[str, tuple[str, ...]] = {
    **{
        key: _INGEST
        for key in (
            "source_files",
            "raw_interactions",
            "raw_eval_interactions",
            "raw_users",
            "raw_videos",
            "planted_truth",
        )
    },
    "interaction_days": (
        *_INGEST,
        "dataset.loader.daily_logs",
        "dataset.loader.interactions",
        "dataset.loader.checks",
        "orchestration.assets.daily",
    ),
    "filtered_ratios": (
        "features.ratios",
        "target",
        "features.checks",
        "dataset.loader.daily_logs",
        "params",
        "orchestration.config_gen",
        "orchestration.assets.prepare",
    ),
    "user_features": ("features.users", "features.ratios", "features.checks", "orchestration.assets.prepare"),
    "video_features": (
        "features.videos",
        "dataset.loader.daily_logs",
        "features.users",
        "features.ratios",
        "features.checks",
        "orchestration.assets.prepare",
    ),
    **{
        key: ("models.data", "models.data_store", "target", "provenance", "orchestration.assets.arrays")
        for key in ("training_arrays", "evaluation_arrays")
    },
    "linear_baseline": ("models.linear", "models.taste", "models.biases", *_MODEL_BASE),
    "als_factors": ("models.als", "models.taste", "models.biases", *_MODEL_BASE),
    "two_tower_embeddings": (
        "models.two_tower",
        "models.two_tower_config",
        "models.two_tower_network",
        "models.two_tower_state",
        "models.two_tower_training",
        "models.lightning_common",
        "models.progress",
        "models.taste",
        "models.als",
        "models.biases",
        *_MODEL_BASE,
    ),
    **{
        key: (
            "models.sequential",
            "models.sequential_config",
            "models.sequential_encoder",
            "models.sequential_network",
            "models.sequential_training",
            "models.sequences",
            "models.lightning_common",
            "models.progress",
            *_MODEL_BASE,
        )
        for key in ("sequential_model", "sequential_shuffled")
    },
    # the hybrids read fitted component bundles: their own modules, the components' scoring code and configs and
    # the shared helpers (each component asset's own version covers how it was fitted; the factory is in _MODEL_BASE)
    "hybrid_fusion": (
        "models.hybrid_fusion",
        "models.components",
        "models.linear",
        "models.als",
        "models.two_tower",
        "models.sequential",
        "models.sequences",
        "models.sequential_config",
        "models.sequential_encoder",
        "models.two_tower_config",
        *_MODEL_BASE,
    ),
    "hybrid_concat": (
        "models.hybrid_concat",
        "models.hybrid_concat_network",
        "models.components",
        "models.lightning_common",
        "models.progress",
        "models.als",
        "models.two_tower",
        "models.sequential",
        "models.sequences",
        "models.sequential_config",
        "models.sequential_encoder",
        "models.two_tower_config",
        *_MODEL_BASE,
    ),
    "hybrid_model": (
        "evaluation.selection",
        "evaluation.metrics",
        "models.registry",
        "orchestration.assets.hybrid",
        *_MODEL_BASE,
    ),
    "metrics": (
        "evaluation.metrics",
        "evaluation.grid",
        "evaluation.ranking_metrics",
        "models.biases",
        "evaluation.baselines",
        "evaluation.tag_profile",
        "evaluation.beyond_accuracy",
        "evaluation.report",
        "evaluation.selection",
        "models.registry",
        "orchestration.assets.evaluate",
    ),
    "recommendations": (
        "recommend",
        "evaluation.metrics",
        "evaluation.grid",
        "evaluation.ranking_metrics",
        "evaluation.selection",
        "models.registry",
        "orchestration.assets.evaluate",
    ),
}


def _module_file(name: str) -> Path | None:
    spec = find_spec(f"{_PACKAGE}.{name}")
    return Path(spec.origin) if spec is not None and spec.origin else None


@cache
def code_version(asset: str) -> str:
    """A 12-hex-digit digest of the source of the modules listed for ``asset`` (the whole package if unlisted).

    Parameters
    ----------
    asset : str
        The asset key.

    Returns
    -------
    str
        Changes whenever one of those source files changes.
    """
    if asset in ASSET_MODULES:
        files = sorted({f for f in (_module_file(m) for m in ASSET_MODULES[asset]) if f is not None})
    else:
        files = sorted(Path(__file__).resolve().parents[1].rglob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
