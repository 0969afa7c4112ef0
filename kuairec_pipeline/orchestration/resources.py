"""The one resource that tells every asset where data comes from and where it goes.

Its fields are generated from :class:`~kuairec_pipeline.settings.Settings` (``config_gen.pydantic_fields``): the
same names, defaults, ranges and descriptions, declared once there.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import create_model

from kuairec_pipeline.orchestration.config_gen import pydantic_fields
from kuairec_pipeline.settings import Settings


class _SettingsResource(ConfigurableResource):
    """KuaiRec source and output folders; defaults come from the KUAIREC_* environment (see settings.py)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> KuaiRecResource:
        """The resource holding ``settings`` (paths as text)."""
        return cls(
            **{name: str(value) if isinstance(value, Path) else value for name, value in asdict(settings).items()}
        )

    @property
    def settings(self) -> Settings:
        """The :class:`Settings` these fields describe (``home`` made absolute; ranges checked again)."""
        values = self.model_dump()
        return Settings(**{**values, "home": Path(values["home"]).absolute()})


KuaiRecResource = create_model(
    "KuaiRecResource", __base__=_SettingsResource, __module__=__name__, **pydantic_fields(Settings, include_all=True)
)
KuaiRecResource.__doc__ = _SettingsResource.__doc__
