"""The project's one exception hierarchy; Step Functions Catch clauses match these names."""

from __future__ import annotations


class DuffBeerError(Exception):
    """Base of every error the pipeline raises on purpose."""


class ConfigurationError(DuffBeerError):
    """A setting is missing or invalid (raised once, at cold start or job start)."""


class InvalidPayloadError(DuffBeerError):
    """A Lambda step's payload does not match its model; the message names each wrong field."""


class DeploymentError(DuffBeerError):
    """Provisioning or removing a stack resource failed; the message names it and the AWS error."""


class DeployUsageError(DeploymentError):
    """The deploy command line cannot be carried out as given (exit status 2)."""


class InvalidFileError(DuffBeerError):
    """The whole input file is rejected; the subclass names the cause."""

    def __init__(self, message: str, *, bucket: str = "", key: str = "") -> None:
        where = f"s3://{bucket}/{key}: " if bucket or key else ""
        super().__init__(f"{where}{message}")
        self.bucket = bucket
        self.key = key


class NotCsvError(InvalidFileError):
    """The object is not a .csv file."""


class EmptyFileError(InvalidFileError):
    """The object is empty or holds only a header row."""


class FileTooLargeError(InvalidFileError):
    """The object is larger than the configured maximum."""


class EncodingError(InvalidFileError):
    """The object is not valid UTF-8."""


class DelimiterError(InvalidFileError):
    """The header is not comma-delimited."""


class MissingColumnsError(InvalidFileError):
    """A required column is absent from the header."""


class TotalsOutOfRangeError(InvalidFileError):
    """The batch's total sales or volume exceed what its report sums hold exactly."""


class TooManyChannelsError(InvalidFileError):
    """The file's valid rows name more distinct channels than the contract allows."""


class InputChangedError(InvalidFileError):
    """The object is no longer the upload its S3 event announced (overwritten meanwhile)."""


class RejectThresholdExceededError(InvalidFileError):
    """Too large a share of the rows was rejected; the batch is not published."""


class BatchNotPublishedError(DuffBeerError):
    """The transform did not publish a complete, consistent batch."""


class StateConflictError(DuffBeerError):
    """Other merges published first every time this merge tried: it gave up."""


class CatalogError(DuffBeerError):
    """The Glue Data Catalog could not be brought up to date."""


class QueryError(DuffBeerError):
    """A report query failed or timed out."""


class QueryTimeoutError(QueryError):
    """A report query did not finish before its deadline (and was cancelled)."""


class ClientNotFoundError(DuffBeerError):
    """The requested client has no current order lines."""


class InvalidParameterError(DuffBeerError):
    """A request parameter is malformed."""


class TableNotPublishedError(InvalidParameterError):
    """The publication a request reads predates a state table its report needs."""


class LocalModeError(DuffBeerError):
    """The local runtime (moto server and its extensions) cannot run as required."""


class BrowserMissingError(LocalModeError):
    """No headless Chromium for the reports page's tests and screenshot."""


class ExecutionStartError(DuffBeerError):
    """A workflow execution could not be started for one or more input objects."""
