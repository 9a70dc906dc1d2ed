"""catalog_batch settings, read from the environment once per container."""

from __future__ import annotations

from duffbeer.settings import CatalogSettings


class CatalogConfig(CatalogSettings):
    """The processed bucket and the Glue database."""
