"""Every name, ARN and setting of one deployment, derived in one place from prefix/suffix."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from duffbeer import naming
from duffbeer.errors import ConfigurationError

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_BUILD_DIR = PROJECT_DIR / "build" / "deploy"

LAMBDA_RUNTIME = "python3.11"
LAMBDA_ARCHITECTURE = "x86_64"
METRICS_NAMESPACE = naming.METRICS_NAMESPACE
GLUE_VERSION = "5.0"
API_STAGE = "v1"

# Lowercase letters, digits and hyphens keep every derived name valid for S3 buckets, IAM,
# Lambda, Glue and Step Functions at once.
_AFFIX = re.compile(r"^[a-z0-9-]*$")
_STACK_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_BUCKET_MAX = 63
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function: its package under lambdas/, handler and sizing."""

    key: str
    package: str
    timeout: int
    memory: int

    @property
    def handler(self) -> str:
        return f"lambdas.{self.package}.handler.handler"


FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec("start_etl", "start_etl", timeout=30, memory=256),
    FunctionSpec("validate_orders", "validate_orders", timeout=60, memory=256),
    FunctionSpec("publish_batch", "publish_batch", timeout=120, memory=256),
    FunctionSpec("catalog_batch", "catalog_batch", timeout=120, memory=256),
    FunctionSpec("clean_up", "clean_up", timeout=300, memory=256),
    FunctionSpec("quarantine_batch", "quarantine_batch", timeout=120, memory=256),
    # Athena polling stays below API Gateway's 29 s integration timeout.
    FunctionSpec("orders_api", "api", timeout=29, memory=512),
)
FUNCTIONS_BY_KEY: dict[str, FunctionSpec] = {spec.key: spec for spec in FUNCTIONS}
# The functions the state machine invokes, by the WorkflowConfig field that names them.
WORKFLOW_FUNCTIONS: dict[str, str] = {
    "validate_function_arn": "validate_orders",
    "publish_function_arn": "publish_batch",
    "catalog_function_arn": "catalog_batch",
    "clean_up_function_arn": "clean_up",
    "quarantine_function_arn": "quarantine_batch",
}

DASHBOARD_ROUTE = "/dashboard"
# The page's own files (lambdas/api/dashboard ASSET_TYPES), each a route of its own.
DASHBOARD_ASSETS: tuple[str, ...] = ("app.js", "app.css", "chart.umd.min.js")
DASHBOARD_ROUTES: tuple[str, ...] = (
    DASHBOARD_ROUTE,
    *(f"{DASHBOARD_ROUTE}/{asset}" for asset in DASHBOARD_ASSETS),
)
API_ROUTES: tuple[str, ...] = (
    "/orders/{client_id}",
    "/sales-by-product",
    "/order-status-report",
    "/daily-sales",
    "/top-clients",
    "/batches",
    "/status",
    "/health",
    "/openapi.json",
    *DASHBOARD_ROUTES,
)
# Routes that answer without an API key: liveness probes (which say nothing of the
# deployment; /status, with the key, does), the API's own description and the reports page
# with its files (the page asks for the key and sends it on the data routes).
PUBLIC_ROUTES: frozenset[str] = frozenset({"/health", "/openapi.json", *DASHBOARD_ROUTES})


@dataclass(frozen=True)
class DeployOptions:
    """What the user chose on the command line (or the local runtime passed in)."""

    prefix: str = ""
    suffix: str = ""
    # The start of every resource name (None: "duffbeer" with the affixes around it).
    stack_name: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None
    # A named profile of the AWS config and credentials files (None: the default chain).
    profile: str | None = None
    log_retention_days: int = 30
    glue_worker_type: str = "G.1X"
    glue_workers: int = 2
    glue_timeout_minutes: int = 60
    # The state job merges one batch into the current state; it is sized by the state.
    state_worker_type: str = "G.1X"
    state_workers: int = 2
    # The tables' upkeep (compaction, expired snapshots, orphan files), once a day (UTC).
    maintenance_schedule: str = "cron(15 3 * * ? *)"
    # The time-travel window of the reports (as_of): publications kept this long.
    snapshot_retention_hours: int = 7 * 24
    athena_bytes_scanned_cutoff: int = 1024**3
    api_rate_limit: float = 50.0
    api_burst_limit: int = 100
    api_quota_per_day: int = 100_000
    quarantine_retention_days: int = 90
    input_version_retention_days: int = 30
    # Overwritten or deleted objects of the processed bucket stay restorable this long.
    processed_version_retention_days: int = 30
    alert_emails: tuple[str, ...] = ()
    athena_results_retention_days: int = 7
    build_dir: Path = DEFAULT_BUILD_DIR
    tags: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        for label, value in (("--prefix", self.prefix), ("--suffix", self.suffix)):
            if not _AFFIX.match(value):
                raise ConfigurationError(
                    f"{label} {value!r}: use lowercase letters, digits and '-' only"
                )
        if self.stack_name is not None:
            if self.prefix or self.suffix:
                raise ConfigurationError("--stack-name replaces --prefix and --suffix: use one")
            if not _STACK_NAME.match(self.stack_name):
                raise ConfigurationError(
                    f"--stack-name {self.stack_name!r}: use lowercase letters, digits and '-', "
                    "starting with a letter and not ending with '-'"
                )
        if not self.region:
            raise ConfigurationError("no region: pass --region or set AWS_REGION")
        names = self.names()
        for bucket in (names.input_bucket, names.processed_bucket):
            if len(bucket) > _BUCKET_MAX:
                raise ConfigurationError(
                    f"bucket name {bucket!r} is longer than {_BUCKET_MAX} characters"
                )
        for address in self.alert_emails:
            if not _EMAIL.match(address):
                raise ConfigurationError(f"--alert-email {address!r} is not an email address")
        if self.log_retention_days <= 0 or min(self.glue_workers, self.state_workers) < 2:
            raise ConfigurationError("log retention must be positive and Glue needs >= 2 workers")

    def names(self) -> StackNames:
        """The resource names these options give."""
        if self.stack_name is not None:
            return StackNames.named(self.stack_name)
        return StackNames.build(self.prefix, self.suffix)

    @property
    def enforce_tls(self) -> bool:
        """False only for a plain-HTTP endpoint (local mode), where a TLS-only bucket policy
        would deny every request; on AWS the buckets always refuse non-TLS requests."""
        return not (self.endpoint_url or "").lower().startswith("http://")


@dataclass(frozen=True)
class StackNames:
    """Resource names of one deployment; ARNs need the account, see StackArns."""

    stack: str
    input_bucket: str
    processed_bucket: str
    database: str
    topic: str
    state_machine: str
    glue_job: str
    state_job: str
    maintenance_job: str
    maintenance_trigger: str
    workgroup: str
    api: str
    layer: str
    glue_failure_rule: str

    @classmethod
    def build(cls, prefix: str = "", suffix: str = "") -> StackNames:
        """The names with affixes around "duffbeer" (--prefix, --suffix)."""
        buckets = naming.BucketNames.build(prefix, suffix)
        database = naming.DATABASE
        if prefix or suffix:
            database = f"{prefix}{naming.DATABASE}{suffix}".replace("-", "_")
        return cls._around(f"{prefix}duffbeer{suffix}", buckets.input, buckets.processed, database)

    @classmethod
    def named(cls, stack_name: str) -> StackNames:
        """Every name starting with `stack_name` (--stack-name): buckets
        `<name>-input-orders` and `<name>-processed-orders`, database `<name>_reports`;
        `named("duffbeer")` gives the default names."""
        return cls._around(
            stack_name,
            f"{stack_name}-input-orders",
            f"{stack_name}-processed-orders",
            f"{stack_name}_reports".replace("-", "_"),
        )

    @classmethod
    def _around(
        cls, stack: str, input_bucket: str, processed_bucket: str, database: str
    ) -> StackNames:
        return cls(
            stack=stack,
            input_bucket=input_bucket,
            processed_bucket=processed_bucket,
            database=database,
            topic=f"{stack}-alerts",
            state_machine=f"{stack}-orders-etl",
            glue_job=f"{stack}-transform-orders",
            state_job=f"{stack}-maintain-state",
            maintenance_job=f"{stack}-maintain-tables",
            maintenance_trigger=f"{stack}-maintain-tables-daily",
            workgroup=f"{stack}-reports",
            api=f"{stack}-orders-api",
            layer=f"{stack}-powertools",
            glue_failure_rule=f"{stack}-glue-job-failed",
        )

    def function(self, key: str) -> str:
        return f"{self.stack}-{key.replace('_', '-')}"

    def role(self, component: str) -> str:
        return f"{self.stack}-{component.replace('_', '-')}-role"

    def lambda_log_group(self, key: str) -> str:
        return f"/aws/lambda/{self.function(key)}"

    @property
    def state_machine_log_group(self) -> str:
        # The /aws/vendedlogs/ prefix keeps the CloudWatch Logs resource policy small.
        return f"/aws/vendedlogs/states/{self.state_machine}"

    @property
    def glue_log_group(self) -> str:
        return f"/aws-glue/jobs/{self.glue_job}"

    @property
    def state_job_log_group(self) -> str:
        return f"/aws-glue/jobs/{self.state_job}"

    @property
    def maintenance_job_log_group(self) -> str:
        return f"/aws-glue/jobs/{self.maintenance_job}"

    @property
    def log_groups(self) -> tuple[str, ...]:
        return (
            *(self.lambda_log_group(spec.key) for spec in FUNCTIONS),
            self.state_machine_log_group,
            self.glue_log_group,
            self.state_job_log_group,
            self.maintenance_job_log_group,
        )

    @property
    def roles(self) -> tuple[str, ...]:
        return (
            *(self.role(spec.key) for spec in FUNCTIONS),
            self.role("glue"),
            self.role("state_job"),
            self.role("states"),
        )

    def alarm(self, what: str) -> str:
        return f"{self.stack}-{what}"

    @property
    def state_machine_alarms(self) -> dict[str, str]:
        return {
            metric: self.alarm(f"state-machine-{metric.removeprefix('Executions').lower()}")
            for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")
        }

    @property
    def lambda_alarms(self) -> dict[str, str]:
        return {spec.key: self.alarm(f"{spec.key.replace('_', '-')}-errors") for spec in FUNCTIONS}

    @property
    def rows_rejected_alarm(self) -> str:
        return self.alarm("rows-rejected")

    @property
    def cleanup_errors_alarm(self) -> str:
        return self.alarm("cleanup-errors")

    @property
    def alarms(self) -> tuple[str, ...]:
        return (
            *self.state_machine_alarms.values(),
            *self.lambda_alarms.values(),
            self.rows_rejected_alarm,
            self.cleanup_errors_alarm,
        )

    @property
    def operations_dashboard(self) -> str:
        return f"{self.stack}-operations"

    @property
    def usage_plan(self) -> str:
        return f"{self.api}-plan"

    @property
    def api_key(self) -> str:
        return f"{self.api}-key"


@dataclass(frozen=True)
class StackArns:
    """The ARNs of a deployment's resources, known before any of them exists."""

    names: StackNames
    account: str
    region: str
    partition: str = "aws"

    def _arn(self, service: str, resource: str, *, region: bool = True) -> str:
        where = self.region if region else ""
        return f"arn:{self.partition}:{service}:{where}:{self.account}:{resource}"

    def bucket(self, bucket: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}"

    def objects(self, bucket: str, prefix: str = "") -> str:
        return f"arn:{self.partition}:s3:::{bucket}/{prefix}*"

    def object(self, bucket: str, key: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}/{key}"

    def function(self, key: str) -> str:
        return self._arn("lambda", f"function:{self.names.function(key)}")

    def role(self, component: str) -> str:
        return self._arn("iam", f"role/{self.names.role(component)}", region=False)

    def log_group(self, name: str) -> str:
        return self._arn("logs", f"log-group:{name}")

    def log_streams(self, name: str) -> str:
        return self._arn("logs", f"log-group:{name}:log-stream:*")

    @property
    def topic(self) -> str:
        return self._arn("sns", self.names.topic)

    @property
    def state_machine(self) -> str:
        return self._arn("states", f"stateMachine:{self.names.state_machine}")

    def execution(self, name: str) -> str:
        """An execution of the state machine, by name."""
        return self._arn("states", f"execution:{self.names.state_machine}:{name}")

    @property
    def glue_job(self) -> str:
        return self._arn("glue", f"job/{self.names.glue_job}")

    @property
    def state_job(self) -> str:
        return self._arn("glue", f"job/{self.names.state_job}")

    @property
    def maintenance_job(self) -> str:
        return self._arn("glue", f"job/{self.names.maintenance_job}")

    @property
    def glue_catalog(self) -> str:
        return self._arn("glue", "catalog")

    @property
    def glue_database(self) -> str:
        return self._arn("glue", f"database/{self.names.database}")

    @property
    def glue_tables(self) -> str:
        return self._arn("glue", f"table/{self.names.database}/*")

    def glue_table(self, table: str) -> str:
        return self._arn("glue", f"table/{self.names.database}/{table}")

    @property
    def workgroup(self) -> str:
        return self._arn("athena", f"workgroup/{self.names.workgroup}")

    @property
    def layer(self) -> str:
        return self._arn("lambda", f"layer:{self.names.layer}")

    def execute_api(self, api_id: str) -> str:
        """Every GET of every stage of the API (the Lambda permission's source)."""
        return self._arn("execute-api", f"{api_id}/*/GET/*")

    @property
    def glue_failure_rule(self) -> str:
        return self._arn("events", f"rule/{self.names.glue_failure_rule}")


@dataclass(frozen=True)
class StackOutputs:
    """What a deployment hands back: everything a user or the local runtime needs."""

    region: str
    account: str
    input_bucket: str
    processed_bucket: str
    state_machine_arn: str
    function_arns: dict[str, str]
    glue_job_name: str
    state_job_name: str
    maintenance_job_name: str
    database: str
    workgroup: str
    topic_arn: str
    api_id: str
    api_url: str
    api_key_id: str
    layer_version_arn: str
    # The CloudWatch console page of the operations dashboard.
    operations_dashboard_url: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "region": self.region,
            "account": self.account,
            "input_bucket": self.input_bucket,
            "processed_bucket": self.processed_bucket,
            "state_machine_arn": self.state_machine_arn,
            "function_arns": dict(self.function_arns),
            "glue_job_name": self.glue_job_name,
            "state_job_name": self.state_job_name,
            "maintenance_job_name": self.maintenance_job_name,
            "database": self.database,
            "workgroup": self.workgroup,
            "topic_arn": self.topic_arn,
            "api_id": self.api_id,
            "api_url": self.api_url,
            "api_key_id": self.api_key_id,
            "layer_version_arn": self.layer_version_arn,
            "operations_dashboard_url": self.operations_dashboard_url,
        }
