"""The Lambdas' settings: one pydantic-settings base, the shared fields and checks declared once.

Each function's settings class (lambdas/<name>/config.py) inherits the groups it needs and
declares only its own fields. A field reads the environment variable its alias names.
Every invalid value is a ConfigurationError whose message starts with that variable's name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Self, TypeVar

from pydantic import AfterValidator, AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from duffbeer import naming
from duffbeer.errors import ConfigurationError

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Athena only handles lower-case names of letters, digits and underscores.
_DATABASE = re.compile(r"[a-z0-9_]{1,255}")
# A superseded run is kept this long after it stopped being published: a reader that started
# on it (a running Athena query, a merge that read its lines) may still use it meanwhile.
DEFAULT_READER_GRACE_SECONDS = 3600

# Messages of pydantic's own checks, worded like ours; the variable's name goes in front.
_TYPE_MESSAGES = {
    "int_parsing": "{input!r} is not an integer",
    "float_parsing": "{input!r} is not a number",
    "missing": "is not set",
}


def _bucket_name(value: str) -> str:
    if not _BUCKET.fullmatch(value):
        raise ValueError(f"{value!r} is not a bucket name")
    return value


def _database_name(value: str) -> str:
    if not _DATABASE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid name")
    return value


def _not_negative(value: int) -> int:
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


BucketName = Annotated[str, AfterValidator(_bucket_name)]
DatabaseName = Annotated[str, AfterValidator(_database_name)]
Seconds = Annotated[int, AfterValidator(_not_negative)]
Positive = Annotated[int, AfterValidator(_positive)]


def describe(error: ValidationError) -> str:
    """One line per invalid setting: its variable, then what is wrong with it."""
    lines = []
    for detail in error.errors(include_url=False):
        variable = str(detail["loc"][0]) if detail["loc"] else ""
        if detail["type"] == "value_error":
            message = str(detail["ctx"]["error"])
        else:
            template = _TYPE_MESSAGES.get(detail["type"], "{input!r}: {msg}")
            message = template.format(input=detail.get("input"), msg=detail["msg"])
        lines.append(f"{variable} {message}" if variable else message)
    return "; ".join(lines)


class Settings(BaseSettings):
    """Base of every function's settings: frozen, validated once, errors as ConfigurationError."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", env_ignore_empty=True, validate_by_name=True
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise ConfigurationError(describe(e)) from e

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings from `env` (only), or from the process environment by default."""
        if env is None:
            return cls()
        ignore_empty = cls.model_config.get("env_ignore_empty", False)
        values: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            for variable in _variables(name, field.validation_alias):
                if variable in env and (env[variable] or not ignore_empty):
                    values[variable] = env[variable]
                    break
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            raise ConfigurationError(describe(e)) from e


def _variables(name: str, alias: object) -> list[str]:
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    return [name.upper()]


class BucketSettings(Settings):
    """Functions that read or write the processed bucket."""

    processed_bucket: BucketName = Field(validation_alias="PROCESSED_BUCKET")


class CatalogSettings(BucketSettings):
    """Functions that also use the Glue database (batch history and the state's tables)."""

    database: DatabaseName = Field(default=naming.DATABASE, validation_alias="GLUE_DATABASE")


_S = TypeVar("_S", bound=Settings)


def loader(cls: type[_S]) -> functools._lru_cache_wrapper[_S]:
    """`cls.from_env` validated on the first call only (once per execution environment)."""
    load: Callable[[], _S] = cls.from_env
    return functools.cache(load)
