"""Shared package of the Duff Beer orders pipeline: contract, naming, manifests, errors, clients."""
