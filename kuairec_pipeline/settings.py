"""The pipeline's environment, read in one place: :class:`Settings`, one field per KUAIREC_* variable.

Each field declares its variable, default, range and description once (``params.param``); the Dagster resource
and docs/PARAMETERS.md are generated from them. Object-storage credentials come from the storage's own environment
(AWS_* for S3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kuairec_pipeline.params import check, param, parameters

PROFILES = ("tiny", "demo", "full")
DEFAULT_SEED = 20220705


MAX_SEED = 2**32 - 1  # NumPy's SeedSequence accepts any non-negative int; 32 bits is what every tool prints


@dataclass(frozen=True)
class Settings:
    """Where data comes from and goes to. Built by :meth:`from_env`; the ranges are enforced either way.

    Each field is declared once (``params.param``, with its environment variable); the Dagster resource
    (``orchestration/resources.py``) is generated from these fields.
    """

    home: Path = param(Path("data"), "Base folder for everything written.", env="KUAIREC_HOME")
    source: str = param(
        "synthetic",
        "'synthetic', 'download', a path to the unpacked KuaiRec folder or to KuaiRec.zip.",
        env="KUAIREC_SOURCE",
    )
    profile: str = param("demo", "Size of the synthetic twin.", choices=PROFILES, env="KUAIREC_PROFILE")
    seed: int = param(DEFAULT_SEED, "Seed of the synthetic twin.", ge=0, le=MAX_SEED, env="KUAIREC_SEED")
    asset_storage: str = param(
        "",
        "Folder or fsspec URL (s3://bucket/prefix) for asset files; empty: home/assets.",
        env="KUAIREC_ASSET_STORAGE",
    )
    new_logs: str = param(
        "",
        "Drop folder of new days of logs, big_matrix_YYYY-MM-DD.csv (dataset/loader/daily_logs.py); empty: "
        "home/new_logs.",
        env="KUAIREC_NEW_LOGS",
    )

    def __post_init__(self) -> None:
        check(self)
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
        """Settings from the KUAIREC_* variables (an unset or empty variable keeps the field's default).

        Parameters
        ----------
        environ : the environment (default ``os.environ``).

        Returns
        -------
        Settings, with ``home`` made absolute.

        Raises
        ------
        ValueError
            Naming the variable: ``KUAIREC_SEED='x' is not an integer``, a value outside the field's range, ...
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for item in parameters(cls):
            text = env.get(item.spec.env, "") or ""
            value: object = item.default if not text else text
            if item.spec.choices is not None and value not in item.spec.choices:
                raise ValueError(f"{item.spec.env}={text!r} is not one of {', '.join(item.spec.choices)}")
            if item.kind is int and text:
                try:
                    value = int(text)
                except ValueError:
                    raise ValueError(f"{item.spec.env}={text!r} is not an integer") from None
            if item.kind is Path:
                value = Path(value).expanduser().absolute()
            values[item.name] = value
        return cls(**values)

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
