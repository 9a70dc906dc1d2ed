"""Local mode: the whole pipeline on one machine against a moto server on 127.0.0.1."""
