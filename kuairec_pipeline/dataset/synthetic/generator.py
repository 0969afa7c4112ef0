"""Writing the twin: ``generate_twin`` and the layout of its folder (``data_dir``, ``truth_dir``, ``params.json``).

The twin is a pure function of (profile, seed): the same seed gives byte-identical files. The folder appears
atomically (built beside ``out_dir`` and renamed into place), so an interrupted run never leaves half a twin.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.dataset.schema import (
    ALL_FILES,
    BIG_MATRIX,
    CAPTION_CATEGORY,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    SMALL_MATRIX,
    SOCIAL_NETWORK,
    USER_FEATURES,
)
from kuairec_pipeline.dataset.synthetic.config import (
    DEFAULT_BEHAVIOUR,
    GENERATOR_VERSION,
    PROFILES,
    TwinBehaviour,
    TwinProfile,
)
from kuairec_pipeline.dataset.synthetic.entities import build_users, build_videos
from kuairec_pipeline.dataset.synthetic.interactions import write_interactions
from kuairec_pipeline.dataset.synthetic.side_files import (
    write_caption_category,
    write_item_categories,
    write_item_daily_features,
    write_social_network,
    write_user_features,
)
from kuairec_pipeline.settings import DEFAULT_SEED

__all__ = [
    "DATA_SUBDIR",
    "PARAMS_FILE",
    "TRUTH_DIR",
    "TRUTH_FILE",
    "data_dir",
    "generate_twin",
    "read_params",
    "truth_dir",
    "twin_is_complete",
]

DATA_SUBDIR = Path("KuaiRec 2.0") / "data"  # the archive's own layout, space included
TRUTH_DIR = "_truth"
TRUTH_FILE = "expected_small.parquet"
PARAMS_FILE = "params.json"
CREDIT = (
    "Synthetic twin of KuaiRec 2.0 (Gao et al., CIKM 2022, CC BY-SA 4.0): the official schema and "
    "published statistics, synthetic rows."
)


def data_dir(out_dir: str | Path) -> Path:
    """The folder of the twin's CSV files, ``out_dir/KuaiRec 2.0/data`` (the official archive's layout).

    Parameters
    ----------
    out_dir : str or Path
        The twin's root folder, as given to :func:`generate_twin`.

    Returns
    -------
    Path
        ``out_dir / DATA_SUBDIR``; it need not exist.
    """
    return Path(out_dir) / DATA_SUBDIR


def truth_dir(out_dir: str | Path) -> Path:
    """The folder of the planted truth and ``params.json``, ``out_dir/_truth`` (the loader never searches it).

    Parameters
    ----------
    out_dir : str or Path
        The twin's root folder, as given to :func:`generate_twin`.

    Returns
    -------
    Path
        ``out_dir / TRUTH_DIR``; it need not exist.
    """
    return Path(out_dir) / TRUTH_DIR


def read_params(out_dir: str | Path) -> dict | None:
    """The twin's ``params.json`` (profile, seed, sizes, generator version, behaviour parameters).

    Parameters
    ----------
    out_dir : str or Path
        The twin's root folder.

    Returns
    -------
    dict or None
        The parsed JSON, or None when the file is missing or unreadable (no complete twin in ``out_dir``).
    """
    path = truth_dir(out_dir) / PARAMS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def twin_is_complete(out_dir: str | Path, profile: str, seed: int) -> bool:
    """Whether ``out_dir`` holds a finished twin of this profile, seed and generator version.

    Parameters
    ----------
    out_dir : str or Path
        The twin's root folder.
    profile : str
        A key of ``PROFILES`` (``"tiny"``, ``"demo"``, ``"full"``).
    seed : int
        The generator's seed.

    Returns
    -------
    bool
        True when ``params.json`` matches (profile, seed, ``GENERATOR_VERSION``) and every official file and the
        truth file exist.
    """
    params = read_params(out_dir)
    if params is None:
        return False
    if (params.get("profile"), params.get("seed"), params.get("generator_version")) != (
        profile,
        seed,
        GENERATOR_VERSION,
    ):
        return False
    files = [data_dir(out_dir) / spec.file_name for spec in ALL_FILES] + [truth_dir(out_dir) / TRUTH_FILE]
    return all(path.is_file() for path in files)


def generate_twin(out_dir: Path, profile: str = "demo", seed: int = DEFAULT_SEED) -> Path:
    """Write the twin of ``profile`` for ``seed`` into ``out_dir``, unless a complete one is already there.

    ``out_dir`` belongs to the twin: an incomplete or different twin there is replaced, atomically.

    Parameters
    ----------
    out_dir : Path
        The twin's root folder; CSV files go to ``data_dir(out_dir)``, the truth to ``truth_dir(out_dir)``.
    profile : str
        A key of ``PROFILES``: ``"tiny"``, ``"demo"`` or ``"full"`` (the real files' 12.5 M big_matrix rows).
    seed : int
        The generator's seed; the same (profile, seed) gives byte-identical files.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ValueError
        If ``profile`` is not a key of ``PROFILES``.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown twin profile {profile!r}; choose one of {', '.join(PROFILES)}")
    out_dir = Path(out_dir)
    if twin_is_complete(out_dir, profile, seed):
        return out_dir
    with atomic_path(out_dir) as building:
        building.mkdir(parents=True)
        _write_twin(building, PROFILES[profile], seed, DEFAULT_BEHAVIOUR)
    return out_dir


def _write_twin(root: Path, profile: TwinProfile, seed: int, behaviour: TwinBehaviour) -> None:
    files = data_dir(root)
    files.mkdir(parents=True)
    videos = build_videos(profile, behaviour, seed)
    users = build_users(profile, behaviour, videos, seed)

    write_user_features(users, files / USER_FEATURES.file_name)
    write_item_categories(videos, files / ITEM_CATEGORIES.file_name)
    write_item_daily_features(videos, seed, files / ITEM_DAILY_FEATURES.file_name)
    write_social_network(users, profile.n_social_users, seed, files / SOCIAL_NETWORK.file_name)
    write_caption_category(videos, seed, files / CAPTION_CATEGORY.file_name)
    with open(files / BIG_MATRIX.file_name, "wb") as big_file, open(files / SMALL_MATRIX.file_name, "wb") as small_file:
        truth, summary = write_interactions(users, videos, profile, behaviour, seed, big_file, small_file)

    truth_folder = truth_dir(root)
    truth_folder.mkdir()
    truth.write_parquet(truth_folder / TRUTH_FILE)
    params = {
        "generator_version": GENERATOR_VERSION,
        "profile": profile.name,
        "seed": seed,
        "sizes": {
            "n_users": profile.n_users,
            "n_videos": profile.n_videos,
            "n_small_users": profile.n_small_users,
            "n_small_videos": profile.n_small_videos,
            "big_rows": summary["big_rows"],
            "small_rows": summary["small_rows"],
            "small_pairs": truth.height,
        },
        "calibration": {
            key: summary[key] for key in ("eta_offset_big", "eta_offset_small", "mean_eta_big", "mean_eta_small")
        },
        "profile_definition": asdict(profile),
        "behaviour": behaviour.as_dict(),
        "credit": CREDIT,
    }
    # Written last: its presence is what marks the twin complete.
    (truth_folder / PARAMS_FILE).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")
