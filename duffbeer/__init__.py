"""Shared package of the Duff Beer orders pipeline: contract, naming, manifests, errors, clients."""

# The release, as pyproject.toml names it (the API reports it on /health).
__version__ = "1.0.0"
