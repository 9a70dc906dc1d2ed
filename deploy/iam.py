"""IAM documents of the stack as pure functions of its ARNs: trust, inline and resource policies."""

from __future__ import annotations

from typing import Any

from deploy.stack import FUNCTIONS, WORKFLOW_FUNCTIONS, StackArns
from duffbeer import naming, reports_sql, state

Document = dict[str, Any]

SERVICE_PRINCIPALS: dict[str, str] = {
    "lambda": "lambda.amazonaws.com",
    "glue": "glue.amazonaws.com",
    "states": "states.amazonaws.com",
}

# Glue writes driver/executor output to these account-wide groups as well as to the job's
# own continuous-logging group; the stack neither creates nor deletes them.
GLUE_SHARED_LOG_GROUPS = ("/aws-glue/jobs/output", "/aws-glue/jobs/error")


def _document(*statements: Document) -> Document:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(sid: str, actions: list[str], resources: list[str], **extra: Any) -> Document:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def trust_policy(service: str, account: str) -> Document:
    """Who may assume a role: one AWS service; Step Functions only on behalf of this account."""
    statement: Document = {
        "Effect": "Allow",
        "Principal": {"Service": SERVICE_PRINCIPALS[service]},
        "Action": "sts:AssumeRole",
    }
    if service == "states":
        # Confused-deputy guard recommended for Step Functions execution roles.
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
    return _document(statement)


def _lambda_logs(arns: StackArns, key: str) -> Document:
    # The deploy creates the log group (with retention), so the function never needs
    # logs:CreateLogGroup and cannot create groups without a retention period.
    return _allow(
        "WriteOwnLogs",
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [arns.log_streams(arns.names.lambda_log_group(key))],
    )


# X-Ray active tracing (functions and state machine). X-Ray supports no resource-level
# permissions for these actions: AWS documents Resource "*".
_XRAY_ACTIONS = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]


def _send_traces() -> Document:
    return _allow("SendTraces", _XRAY_ACTIONS, ["*"])


def _read_input(arns: StackArns) -> Document:
    # GetObjectVersion: the event names a version when the input bucket is versioned, and the
    # functions then read exactly that version.
    return _allow(
        "ReadInputObjects",
        ["s3:GetObject", "s3:GetObjectVersion"],
        [arns.objects(arns.names.input_bucket)],
    )


def _list_processed(arns: StackArns, sid: str, prefixes: list[str]) -> Document:
    return _allow(
        sid,
        ["s3:ListBucket"],
        [arns.bucket(arns.names.processed_bucket)],
        Condition={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
    )


def _processed_objects(arns: StackArns, *prefixes: str) -> list[str]:
    return [arns.objects(arns.names.processed_bucket, prefix) for prefix in prefixes]


_CATALOG_READ = [
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchGetPartition",
]
_CATALOG_WRITE = [
    "glue:CreateDatabase",
    "glue:CreateTable",
    "glue:UpdateTable",
    "glue:BatchCreatePartition",
    "glue:BatchUpdatePartition",
    "glue:BatchDeletePartition",
    "glue:CreatePartition",
    "glue:UpdatePartition",
    "glue:DeletePartition",
]


def _catalog_resources(arns: StackArns) -> list[str]:
    return [arns.glue_catalog, arns.glue_database, arns.glue_tables]


def _batch_catalog_resources(arns: StackArns) -> list[str]:
    """The catalog, the database, and exactly the tables and views the catalog step keeps:
    the per-batch history tables and the views over the state (never the state's tables)."""
    tables = (
        naming.ORDER_LINES_TABLE,
        naming.REJECTS_TABLE,
        *naming.BATCH_REPORT_TABLES.values(),
        *reports_sql.VIEW_COLUMNS,
    )
    return [arns.glue_catalog, arns.glue_database, *(arns.glue_table(t) for t in tables)]


def _state_table_resources(arns: StackArns) -> list[str]:
    """The catalog, the database and exactly the state's Iceberg tables."""
    tables = (*state.STATE_TABLES, state.PUBLICATIONS_TABLE)
    return [arns.glue_catalog, arns.glue_database, *(arns.glue_table(t) for t in tables)]


# What Iceberg's GlueCatalog calls to read, create and commit to a table. A commit is an
# UpdateTable with the VersionId it read (Glue refuses a stale one: optimistic locking).
_ICEBERG_CATALOG = [
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:CreateTable",
    "glue:UpdateTable",
]


def lambda_policy(key: str, arns: StackArns) -> Document:
    """The inline policy of one function's role: exactly what its code calls."""
    names = arns.names
    statements: list[Document] = [_lambda_logs(arns, key), _send_traces()]
    if key == "start_etl":
        # The S3 event carries everything the execution input needs: no S3 access at all.
        # Lambda delivers events that failed every retry to the alert topic as this role.
        statements += [
            _allow("StartOneExecutionPerObject", ["states:StartExecution"], [arns.state_machine]),
            _allow("ReportUndeliveredEvents", ["sns:Publish"], [arns.topic]),
        ]
    elif key == "validate_orders":
        # Reads the header and a bounded sample with ranged GETs, then copies the exact
        # version it checked to the run's own input key (a server-side copy).
        statements += [
            _read_input(arns),
            _allow(
                "CopyUploadToItsRun",
                # Delete: a copy found to hold other bytes than the ones validated goes.
                ["s3:PutObject", "s3:DeleteObject"],
                [
                    arns.object(
                        names.processed_bucket, f"{naming.RUNS_PREFIX}*/*/{naming.RUN_INPUT_FILE}"
                    )
                ],
            ),
        ]
    elif key == "publish_batch":
        statements += [
            # Listing manifests/ too makes a missing pointer a 404 rather than an AccessDenied.
            _list_processed(arns, "ListRunsOfBatch", [naming.RUNS_PREFIX, naming.MANIFESTS_PREFIX]),
            _allow(
                "ReadRunsAndPointers",
                ["s3:GetObject"],
                _processed_objects(arns, naming.MANIFESTS_PREFIX, naming.RUNS_PREFIX),
            ),
            # Conditional PUTs (If-Match / If-None-Match) of the batch pointer only.
            _allow(
                "WriteBatchPointers",
                ["s3:PutObject"],
                _processed_objects(arns, naming.MANIFESTS_PREFIX),
            ),
            _allow(
                "RecordRunsInHistory",
                ["s3:PutObject"],
                _processed_objects(arns, naming.HISTORY_PREFIX),
            ),
        ]
    elif key == "catalog_batch":
        # Reads the batch manifest: partitions point at the locations it lists.
        statements += [
            _list_processed(arns, "ListPointers", [naming.MANIFESTS_PREFIX]),
            _allow(
                "ReadPointers",
                ["s3:GetObject"],
                [arns.objects(names.processed_bucket, naming.MANIFESTS_PREFIX)],
            ),
            _allow(
                "MaintainBatchTablesAndViews",
                _CATALOG_READ + _CATALOG_WRITE,
                _batch_catalog_resources(arns),
            ),
        ]
    elif key == "clean_up":
        statements += [
            _list_processed(arns, "ListRuns", [naming.RUNS_PREFIX, naming.MANIFESTS_PREFIX]),
            _allow(
                "ReadPointersAndRuns",
                ["s3:GetObject"],
                _processed_objects(arns, naming.MANIFESTS_PREFIX, naming.RUNS_PREFIX),
            ),
            # A superseded run's files and its entry in the run index.
            _allow(
                "DeleteSupersededRuns",
                ["s3:DeleteObject"],
                _processed_objects(arns, naming.RUNS_PREFIX, naming.HISTORY_PREFIX),
            ),
        ]
    elif key == "quarantine_batch":
        # A server-side copy of the input plus error.json; nothing else in either bucket.
        statements += [
            _read_input(arns),
            _allow(
                "WriteQuarantine",
                ["s3:PutObject"],
                _processed_objects(arns, naming.QUARANTINE_PREFIX),
            ),
            # The run's entry in the run index, tagged to expire with its report.
            _allow(
                "RecordRunsInHistory",
                ["s3:PutObject", "s3:PutObjectTagging"],
                _processed_objects(arns, naming.HISTORY_PREFIX),
            ),
        ]
    elif key == "orders_api":
        statements += [
            _allow(
                "QueryThroughWorkgroup",
                [
                    "athena:StartQueryExecution",
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:StopQueryExecution",
                ],
                [arns.workgroup],
            ),
            _allow("ReadCatalog", _CATALOG_READ, _catalog_resources(arns)),
            # The publications table's metadata (which snapshot each table is at), and the
            # state's files Athena reads with these credentials: the warehouse only.
            _allow(
                "ReadState",
                ["s3:GetObject"],
                _processed_objects(arns, naming.WAREHOUSE_PREFIX),
            ),
            _list_processed(
                arns,
                "ListStateAndResults",
                [naming.WAREHOUSE_PREFIX, naming.ATHENA_RESULTS_PREFIX],
            ),
            # GET /batches: a page of the run index, the run manifests and quarantine
            # reports of its runs, and the batch pointers that say which run is published.
            _list_processed(arns, "ListBatchHistory", [naming.HISTORY_PREFIX]),
            _allow(
                "ReadBatchHistory",
                ["s3:GetObject"],
                [
                    arns.objects(names.processed_bucket, naming.MANIFESTS_PREFIX),
                    arns.object(
                        names.processed_bucket,
                        f"{naming.RUNS_PREFIX}*/{naming.RUN_MANIFEST_FILE}",
                    ),
                    arns.object(
                        names.processed_bucket,
                        f"{naming.QUARANTINE_PREFIX}*/{naming.ERROR_REPORT_FILE}",
                    ),
                ],
            ),
            _allow(
                "LocateBucketForAthena",
                ["s3:GetBucketLocation"],
                [arns.bucket(names.processed_bucket)],
            ),
            # Athena writes query results with the caller's credentials: the only place
            # this role may write is the workgroup's result prefix.
            _allow(
                "WriteAthenaResults",
                [
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                _processed_objects(arns, naming.ATHENA_RESULTS_PREFIX),
            ),
        ]
    else:
        raise KeyError(f"no policy for function {key!r}")
    return _document(*statements)


def _glue_logging(arns: StackArns, *log_groups: str) -> list[Document]:
    return [
        _allow(
            "CreateSharedGlueLogGroups",
            ["logs:CreateLogGroup"],
            [arns.log_group(group) for group in GLUE_SHARED_LOG_GROUPS],
        ),
        _allow(
            "WriteJobLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [arns.log_streams(group) for group in (*log_groups, *GLUE_SHARED_LOG_GROUPS)],
        ),
        # cloudwatch:PutMetricData supports no resource-level scoping; the namespace
        # condition limits the job metrics to Glue's own namespace.
        _allow(
            "PublishJobMetrics",
            ["cloudwatch:PutMetricData"],
            ["*"],
            Condition={"StringEquals": {"cloudwatch:namespace": "Glue"}},
        ),
    ]


def glue_policy(arns: StackArns) -> Document:
    """The transform job's role: read the run's input copy and artifacts, write the run, log."""
    names = arns.names
    return _document(
        # The job reads the run's copy of the upload (runs/), never the input bucket.
        _allow(
            "ListAndLocateBucket",
            ["s3:ListBucket", "s3:GetBucketLocation"],
            [arns.bucket(names.processed_bucket)],
        ),
        _allow(
            "ReadArtifactsAndRuns",
            ["s3:GetObject"],
            _processed_objects(arns, naming.ARTIFACTS_PREFIX, naming.RUNS_PREFIX),
        ),
        _allow(
            "WriteRuns",
            ["s3:PutObject", "s3:AbortMultipartUpload"],
            _processed_objects(arns, naming.RUNS_PREFIX),
        ),
        # Spark's output committer deletes its own temporary objects under the run's prefix.
        _allow(
            "CleanUpRunTemporaries",
            ["s3:DeleteObject"],
            _processed_objects(arns, naming.RUNS_PREFIX),
        ),
        *_glue_logging(arns, names.glue_log_group),
    )


def state_job_policy(arns: StackArns) -> Document:
    """The role of the state job and of the tables' upkeep job: read the published runs and
    their pointers, read and commit to exactly the state's Iceberg tables (files under the
    warehouse prefix only), log. Iceberg deletes files it wrote for a failed commit, and the
    upkeep job expires snapshots and orphan files: both delete under the warehouse only."""
    names = arns.names
    return _document(
        _list_processed(
            arns,
            "ListRunsPointersAndState",
            [naming.RUNS_PREFIX, naming.MANIFESTS_PREFIX, naming.WAREHOUSE_PREFIX],
        ),
        _allow("LocateBucket", ["s3:GetBucketLocation"], [arns.bucket(names.processed_bucket)]),
        _allow(
            "ReadArtifactsRunsAndPointers",
            ["s3:GetObject"],
            _processed_objects(
                arns, naming.ARTIFACTS_PREFIX, naming.RUNS_PREFIX, naming.MANIFESTS_PREFIX
            ),
        ),
        _allow(
            "ReadAndWriteStateFiles",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            _processed_objects(arns, naming.WAREHOUSE_PREFIX),
        ),
        _allow("CommitStateTables", _ICEBERG_CATALOG, _state_table_resources(arns)),
        *_glue_logging(arns, names.state_job_log_group, names.maintenance_job_log_group),
    )


def state_machine_policy(arns: StackArns) -> Document:
    """The state machine's role: invoke its functions, run the two jobs, alert, log."""
    functions = [arns.function(key) for key in WORKFLOW_FUNCTIONS.values()]
    return _document(
        _allow(
            "InvokeWorkflowFunctions",
            ["lambda:InvokeFunction"],
            functions + [f"{arn}:*" for arn in functions],
        ),
        _allow(
            "RunJobs",
            ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"],
            [arns.glue_job, arns.state_job],
        ),
        _allow("PublishFailures", ["sns:Publish"], [arns.topic]),
        _send_traces(),
        # CloudWatch Logs delivery for Step Functions supports no resource-level
        # permissions (AWS documents Resource "*" for these actions).
        _allow(
            "DeliverExecutionLogs",
            [
                "logs:CreateLogDelivery",
                "logs:GetLogDelivery",
                "logs:UpdateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups",
            ],
            ["*"],
        ),
    )


def role_documents(arns: StackArns) -> dict[str, tuple[Document, Document]]:
    """Every role of the stack: role name -> (trust policy, inline policy)."""
    roles: dict[str, tuple[Document, Document]] = {}
    for spec in FUNCTIONS:
        roles[arns.names.role(spec.key)] = (
            trust_policy("lambda", arns.account),
            lambda_policy(spec.key, arns),
        )
    roles[arns.names.role("glue")] = (trust_policy("glue", arns.account), glue_policy(arns))
    roles[arns.names.role("state_job")] = (
        trust_policy("glue", arns.account),
        state_job_policy(arns),
    )
    roles[arns.names.role("states")] = (
        trust_policy("states", arns.account),
        state_machine_policy(arns),
    )
    return roles


def tls_only_bucket_policy(arns: StackArns, bucket: str) -> Document:
    """Deny every request to the bucket that does not use TLS."""
    return _document(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arns.bucket(bucket), arns.objects(bucket)],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


def topic_policy(arns: StackArns) -> Document:
    """The alert topic: the account manages it; CloudWatch alarms and the Glue rule publish."""
    return _document(
        {
            "Sid": "AccountManagesTopic",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{arns.partition}:iam::{arns.account}:root"},
            "Action": [
                "sns:GetTopicAttributes",
                "sns:SetTopicAttributes",
                "sns:Subscribe",
                "sns:ListSubscriptionsByTopic",
                "sns:Publish",
            ],
            "Resource": arns.topic,
        },
        {
            "Sid": "GlueFailureRulePublishes",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": arns.topic,
            "Condition": {"ArnEquals": {"aws:SourceArn": arns.glue_failure_rule}},
        },
        {
            "Sid": "AlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": arns.topic,
            "Condition": {"StringEquals": {"aws:SourceAccount": arns.account}},
        },
    )
