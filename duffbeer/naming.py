"""Names and storage layout shared by every component: buckets, prefixes, tables, batch ids.

Layout of the processed bucket (keys relative to the bucket root):

    runs/<batch_id>/<run_id>/input/source.csv      the exact upload the run processes
    runs/<batch_id>/<run_id>/order_lines/point_of_sale_channel=<c>/order_date=<d>/*.parquet
    runs/<batch_id>/<run_id>/reports/<report>/*.parquet
    runs/<batch_id>/<run_id>/rejects/*.parquet
    runs/<batch_id>/<run_id>/_manifest.json       the run's own manifest (always written)
    manifests/<batch_id>.json                     the batch pointer: names the published run
    warehouse/<database>.db/<table>/              the current state's Iceberg tables (data and
                                                  metadata, written only through Iceberg)
    quarantine/<batch_id>/<run_id>/<file name>    a rejected input file ...
    quarantine/<batch_id>/<run_id>/error.json     ... and its machine-readable error report
    history/<inverted run time>/<batch_id>/<run_id>.json
                                                  the run index GET /batches pages through
                                                  (duffbeer.history), newest run first
    athena-results/                               Athena query results (workgroup output)
    artifacts/                                    Glue script and libraries uploaded by deploy

Every run writes under its own `runs/<batch_id>/<run_id>/` prefix, so nothing a reader may
be using is ever overwritten. A batch is published when `manifests/<batch_id>.json` names
the run in its `published` block (one conditional PUT); the reports move when the state job
publishes a merge of it (one Iceberg commit, docs/adr/0045).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_INPUT_BUCKET = "duffbeer-input-orders"
DEFAULT_PROCESSED_BUCKET = "duffbeer-processed-orders"
DATABASE = "duffbeer_reports"
PROJECT_TAG = "duffbeer-orders"
# CloudWatch namespace of the Lambdas' EMF metrics (POWERTOOLS_METRICS_NAMESPACE overrides).
METRICS_NAMESPACE = "DuffBeerOrders"

RUNS_PREFIX = "runs/"
MANIFESTS_PREFIX = "manifests/"
QUARANTINE_PREFIX = "quarantine/"
ATHENA_RESULTS_PREFIX = "athena-results/"
ARTIFACTS_PREFIX = "artifacts/"
WAREHOUSE_PREFIX = "warehouse/"
HISTORY_PREFIX = "history/"

ORDER_LINES_DIR = "order_lines"
# The run's own copy of the exact upload it processes (written by ValidateOrders).
RUN_INPUT_FILE = "input/source.csv"
REPORTS_DIR = "reports"
REJECTS_DIR = "rejects"
RUN_MANIFEST_FILE = "_manifest.json"
ERROR_REPORT_FILE = "error.json"

# Per-batch report names (directory under reports/ and suffix of the catalog table).
CLIENT_SALES_REPORT = "client_sales"
PRODUCT_CHANNEL_SALES_REPORT = "product_channel_sales"
ORDER_STATUS_REPORT = "order_status"
BATCH_REPORTS: tuple[str, ...] = (
    CLIENT_SALES_REPORT,
    PRODUCT_CHANNEL_SALES_REPORT,
    ORDER_STATUS_REPORT,
)

# Glue Data Catalog tables of the batch history (the current state's are in state.py).
ORDER_LINES_TABLE = "order_lines"
REJECTS_TABLE = "rejects"
BATCH_REPORT_TABLES: dict[str, str] = {name: f"batch_{name}" for name in BATCH_REPORTS}

# Manifest statuses.
STATUS_SUCCEEDED = "SUCCEEDED"
STATUS_FAILED = "FAILED"

_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
EXECUTION_NAME_MAX = 80


@dataclass(frozen=True)
class BucketNames:
    """The two buckets of one deployment (R1: prefix/suffix keep real names unique)."""

    input: str
    processed: str

    @classmethod
    def build(cls, prefix: str = "", suffix: str = "") -> BucketNames:
        return cls(
            input=f"{prefix}{DEFAULT_INPUT_BUCKET}{suffix}",
            processed=f"{prefix}{DEFAULT_PROCESSED_BUCKET}{suffix}",
        )


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def batch_id_for(bucket: str, key: str) -> str:
    """Deterministic batch id of an input object: a readable slug of the file name + a hash.

    The same bucket/key always gives the same id, so a corrected re-upload replaces the
    batch; the id only uses [a-z0-9-] so it is safe in S3 keys, partition values and names.
    """
    stem = key.rsplit("/", 1)[-1]
    if stem.lower().endswith(".csv"):
        stem = stem[:-4]
    slug = _SLUG_CHARS.sub("-", stem.lower()).strip("-")[:40] or "orders"
    return f"{slug}-{_digest(f'{bucket}/{key}', 12)}"


def execution_name_for(batch_id: str, object_identity: str) -> str:
    """Deterministic Step Functions execution name for one delivery of one object version.

    `object_identity` is the version id when the bucket is versioned, otherwise the ETag plus
    the event's sequencer: a duplicate delivery of the same event gets the same name (and
    Step Functions refuses to start it twice), a new upload of the key gets a new one.
    """
    name = f"{batch_id}-{_digest(object_identity, 16)}"
    return _NAME_CHARS.sub("-", name)[-EXECUTION_NAME_MAX:]


def manual_execution_name(batch_id: str, started: datetime, token: str) -> str:
    """Execution name of a run started by hand: `<batch id>-manual-<UTC time>-<token>`.

    Never an automatic run's name (those end in a digest), readable, and new on every start
    (millisecond time plus a random token); the batch id gives way on the left if needed.
    """
    stamp = started.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")[:-3]
    name = _NAME_CHARS.sub("-", f"{batch_id}-manual-{stamp}Z-{token}")
    return name[-EXECUTION_NAME_MAX:].lstrip("-_")


def run_prefix(batch_id: str, run_id: str) -> str:
    return f"{RUNS_PREFIX}{batch_id}/{run_id}/"


def run_lines_prefix(batch_id: str, run_id: str) -> str:
    """Where a run's curated lines are (the transform's order_lines output)."""
    return f"{run_prefix(batch_id, run_id)}{ORDER_LINES_DIR}/"


def manifest_key(batch_id: str) -> str:
    return f"{MANIFESTS_PREFIX}{batch_id}.json"


def run_input_key(batch_id: str, run_id: str) -> str:
    return f"{run_prefix(batch_id, run_id)}{RUN_INPUT_FILE}"


def run_manifest_key(batch_id: str, run_id: str) -> str:
    return f"{run_prefix(batch_id, run_id)}{RUN_MANIFEST_FILE}"


def quarantine_prefix(batch_id: str, run_id: str) -> str:
    return f"{QUARANTINE_PREFIX}{batch_id}/{run_id}/"


def is_ignored_input_key(key: str) -> bool:
    """Keys that never start a batch: folder markers and the pipeline's own prefixes."""
    return key.endswith("/") or key.startswith(QUARANTINE_PREFIX)
