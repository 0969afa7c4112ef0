"""The one resource that tells every asset where data comes from and where it goes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field

from kuairec_pipeline.settings import DEFAULT_SEED, MAX_SEED, Settings


class KuaiRecResource(ConfigurableResource):
    """KuaiRec source and output folders; defaults come from the KUAIREC_* environment (see settings.py)."""

    home: str = Field(default="data", description="Base folder for everything written (KUAIREC_HOME).")
    source: str = Field(
        default="synthetic",
        description="'synthetic', a path to the unpacked KuaiRec folder or to KuaiRec.zip, or 'download'.",
    )
    profile: Literal["tiny", "demo", "full"] = Field(
        default="demo", description="Size of the synthetic twin: tiny, demo or full."
    )
    seed: int = Field(default=DEFAULT_SEED, ge=0, le=MAX_SEED, description="Seed of the synthetic twin: 0..2**32-1.")
    new_logs: str = Field(
        default="",
        description="Drop folder of new days of logs, big_matrix_YYYY-MM-DD.csv (KUAIREC_NEW_LOGS); '' = "
        "<home>/new_logs.",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> KuaiRecResource:
        return cls(
            home=str(settings.home),
            source=settings.source,
            profile=settings.profile,
            seed=settings.seed,
            new_logs=settings.new_logs,
        )

    @property
    def settings(self) -> Settings:
        return Settings(
            home=Path(self.home).absolute(),
            source=self.source,
            profile=self.profile,
            seed=self.seed,
            new_logs=self.new_logs,
        )
