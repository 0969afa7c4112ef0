"""The pipeline's environment, read in one place.

KUAIREC_HOME    base folder for everything written (default ``data/``)
KUAIREC_SOURCE  ``synthetic`` (default), a path to the unpacked KuaiRec folder or to ``KuaiRec.zip``, or ``download``
KUAIREC_PROFILE size of the synthetic twin: ``tiny``, ``demo`` (default) or ``full``
KUAIREC_SEED    seed of the synthetic twin (default 20220705)
KUAIREC_ASSET_STORAGE  where asset files go: a folder or an fsspec URL such as ``s3://bucket/prefix`` (default
                ``$KUAIREC_HOME/assets``); credentials come from the storage's own environment (AWS_* for S3)
KUAIREC_NEW_LOGS  the drop folder of new days of logs, ``big_matrix_YYYY-MM-DD.csv`` (default
                ``$KUAIREC_HOME/new_logs``; see ``dataset/loader/daily_logs.py``)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROFILES = ("tiny", "demo", "full")
DEFAULT_SEED = 20220705


MAX_SEED = 2**32 - 1  # NumPy's SeedSequence accepts any non-negative int; 32 bits is what every tool prints


@dataclass(frozen=True)
class Settings:
    """Where data comes from and goes to. Built by :meth:`from_env`; the ranges are enforced either way."""

    home: Path  # base folder for everything written (KUAIREC_HOME)
    source: str = "synthetic"  # 'synthetic', 'download', a folder or a .zip path (KUAIREC_SOURCE); non-empty
    profile: str = "demo"  # size of the synthetic twin: one of PROFILES (KUAIREC_PROFILE)
    seed: int = DEFAULT_SEED  # seed of the synthetic twin, 0..MAX_SEED (KUAIREC_SEED)
    asset_storage: str = ""  # folder or fsspec URL for asset files, "" = home/assets (KUAIREC_ASSET_STORAGE)
    new_logs: str = ""  # drop folder of daily logs (big_matrix_YYYY-MM-DD.csv), "" = home/new_logs (KUAIREC_NEW_LOGS)

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"profile (KUAIREC_PROFILE) must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed (KUAIREC_SEED) must be an integer in 0..{MAX_SEED}, got {self.seed!r}")
        if not str(self.source).strip():
            raise ValueError(
                "source (KUAIREC_SOURCE) must be 'synthetic', 'download', a folder or a .zip path, got an empty value"
            )
        if "://" in self.asset_storage:
            from fsspec.registry import known_implementations

            protocol = self.asset_storage.split("://", 1)[0]
            if protocol not in known_implementations:
                raise ValueError(
                    f"KUAIREC_ASSET_STORAGE={self.asset_storage!r}: unknown protocol {protocol!r}; "
                    "use a folder or an fsspec URL such as s3://bucket/prefix"
                )

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        profile = env.get("KUAIREC_PROFILE", "demo") or "demo"
        if profile not in PROFILES:
            raise ValueError(f"KUAIREC_PROFILE={profile!r} is not one of {', '.join(PROFILES)}")
        seed_text = env.get("KUAIREC_SEED", str(DEFAULT_SEED)) or str(DEFAULT_SEED)
        try:
            seed = int(seed_text)
        except ValueError:
            raise ValueError(f"KUAIREC_SEED={seed_text!r} is not an integer") from None
        return cls(
            home=Path(env.get("KUAIREC_HOME", "data") or "data").expanduser().absolute(),
            source=env.get("KUAIREC_SOURCE", "synthetic") or "synthetic",
            profile=profile,
            seed=seed,
            asset_storage=env.get("KUAIREC_ASSET_STORAGE", "") or "",
            new_logs=env.get("KUAIREC_NEW_LOGS", "") or "",
        )

    # Folder layout below KUAIREC_HOME (one place, so tests and CLI agree with the assets).
    @property
    def assets_dir(self) -> Path:
        return self.home / "assets"

    @property
    def asset_location(self) -> str:
        """Where the IO managers write asset files: ``asset_storage`` when set, else ``assets_dir``."""
        if "://" in self.asset_storage:
            return self.asset_storage
        return str(Path(self.asset_storage).expanduser().absolute()) if self.asset_storage else str(self.assets_dir)

    @property
    def new_logs_dir(self) -> Path:
        """The drop folder of new days of logs: ``new_logs`` when set, else ``home/new_logs``."""
        return Path(self.new_logs).expanduser().absolute() if self.new_logs else self.home / "new_logs"

    @property
    def source_dir(self) -> Path:
        return self.home / "source"

    @property
    def downloads_dir(self) -> Path:
        return self.home / "downloads"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def synthetic_dir(self) -> Path:
        return self.source_dir / f"synthetic-{self.profile}-seed{self.seed}"
