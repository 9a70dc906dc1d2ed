"""Glue (artifacts, jobs, the upkeep trigger, database) and the Athena workgroup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from deploy.artifacts import file_sha256
from deploy.core import Change, Clients, Reporter, aws_errors, canonical, error_code, get_or_none
from deploy.stack import GLUE_VERSION, DeployOptions, StackNames
from duffbeer import iceberg, naming
from duffbeer.errors import CatalogError, DeploymentError
from lambdas.catalog_batch.catalog import ensure_catalog

GLUE_ARTIFACTS_PREFIX = f"{naming.ARTIFACTS_PREFIX}glue/"
_SHA_METADATA = "sha256"


def ensure_artifact(clients: Clients, reporter: Reporter, bucket: str, key: str, path: Path) -> str:
    """Upload a file unless the object already holds the same bytes; returns its s3:// URI."""
    sha = file_sha256(path)
    with aws_errors(f"s3://{bucket}/{key}"):
        head = get_or_none(lambda: clients.s3.head_object(Bucket=bucket, Key=key))
        if head and head.get("Metadata", {}).get(_SHA_METADATA) == sha:
            reporter.record("s3 artifact", key, Change.UNCHANGED)
        else:
            clients.s3.put_object(
                Bucket=bucket, Key=key, Body=path.read_bytes(), Metadata={_SHA_METADATA: sha}
            )
            reporter.record("s3 artifact", key, Change.UPDATED if head else Change.CREATED)
    return f"s3://{bucket}/{key}"


def _job_definition(
    *,
    description: str,
    role_arn: str,
    script_uri: str,
    libs_uri: str,
    worker_type: str,
    workers: int,
    timeout_minutes: int,
    max_concurrent_runs: int,
    log_group: str,
    arguments: dict[str, str],
) -> dict[str, Any]:
    """A Glue job: Glue 5.0 set explicitly, sized workers, metrics and continuous logs."""
    return {
        "Role": role_arn,
        "Description": description,
        "Command": {"Name": "glueetl", "ScriptLocation": script_uri, "PythonVersion": "3"},
        "GlueVersion": GLUE_VERSION,
        "WorkerType": worker_type,
        "NumberOfWorkers": workers,
        "Timeout": timeout_minutes,
        "MaxRetries": 0,
        "ExecutionProperty": {"MaxConcurrentRuns": max_concurrent_runs},
        "DefaultArguments": {
            "--extra-py-files": libs_uri,
            **arguments,
            # Each run is told exactly what to read, so bookmarks add nothing (and would make
            # a corrected re-upload of the same key look "already processed").
            "--job-bookmark-option": "job-bookmark-disable",
            "--enable-metrics": "true",
            "--enable-observability-metrics": "true",
            "--enable-continuous-cloudwatch-log": "true",
            "--continuous-log-logGroup": log_group,
            "--job-language": "python",
        },
    }


def iceberg_arguments(names: StackNames) -> dict[str, str]:
    """Glue 5.0's own Iceberg (1.7.1) and the Spark catalog settings local mode uses too."""
    conf = iceberg.spark_conf(iceberg.warehouse_uri(names.processed_bucket))
    return {"--datalake-formats": "iceberg", "--conf": iceberg.glue_conf_argument(conf)}


def transform_job_definition(
    names: StackNames, options: DeployOptions, role_arn: str, script_uri: str, libs_uri: str
) -> dict[str, Any]:
    """The transform job: one run per batch, overlapping with runs of other batches."""
    return _job_definition(
        description="Duff Beer orders: CSV -> curated Parquet + reports, one batch per run",
        role_arn=role_arn,
        script_uri=script_uri,
        libs_uri=libs_uri,
        worker_type=options.glue_worker_type,
        workers=options.glue_workers,
        timeout_minutes=options.glue_timeout_minutes,
        max_concurrent_runs=10,
        log_group=names.glue_log_group,
        arguments={"--output_path": f"s3://{names.processed_bucket}/"},
    )


def state_job_definition(
    names: StackNames, options: DeployOptions, role_arn: str, script_uri: str, libs_uri: str
) -> dict[str, Any]:
    """The state job: merges a published batch into the current state's Iceberg tables.
    Runs of several executions overlap: Iceberg's commit of the publication decides, and a
    merge that lost starts again on the newer publication (docs/adr/0045)."""
    return _job_definition(
        description="Duff Beer orders: merge a published batch into the Iceberg state",
        role_arn=role_arn,
        script_uri=script_uri,
        libs_uri=libs_uri,
        worker_type=options.state_worker_type,
        workers=options.state_workers,
        timeout_minutes=options.glue_timeout_minutes,
        max_concurrent_runs=10,
        log_group=names.state_job_log_group,
        arguments={
            "--processed_path": f"s3://{names.processed_bucket}/",
            "--database": names.database,
            **iceberg_arguments(names),
        },
    )


def maintenance_job_definition(
    names: StackNames, options: DeployOptions, role_arn: str, script_uri: str, libs_uri: str
) -> dict[str, Any]:
    """The tables' upkeep: compaction, expired snapshots, orphan files (one run at a time)."""
    return _job_definition(
        description="Duff Beer orders: compact the state's Iceberg tables, expire snapshots",
        role_arn=role_arn,
        script_uri=script_uri,
        libs_uri=libs_uri,
        worker_type=options.state_worker_type,
        workers=options.state_workers,
        timeout_minutes=options.glue_timeout_minutes,
        max_concurrent_runs=1,
        log_group=names.maintenance_job_log_group,
        arguments={
            "--database": names.database,
            "--snapshot_retention_hours": str(options.snapshot_retention_hours),
            **iceberg_arguments(names),
        },
    )


_JOB_FIELDS = (
    "Role",
    "Command",
    "GlueVersion",
    "WorkerType",
    "NumberOfWorkers",
    "Timeout",
    "MaxRetries",
    "ExecutionProperty",
    "DefaultArguments",
)


def ensure_job(
    clients: Clients,
    reporter: Reporter,
    name: str,
    definition: dict[str, Any],
    tags: dict[str, str],
) -> None:
    glue = clients.glue
    with aws_errors(f"Glue job {name}"):
        current = get_or_none(lambda: glue.get_job(JobName=name))
        if current is None:
            glue.create_job(Name=name, Tags=tags, **definition)
            reporter.record("glue job", name, Change.CREATED, f"Glue {GLUE_VERSION}")
            return
        job = current["Job"]
        if all(canonical(job.get(key)) == canonical(definition[key]) for key in _JOB_FIELDS):
            reporter.record("glue job", name, Change.UNCHANGED)
            return
        glue.update_job(JobName=name, JobUpdate=definition)
        reporter.record("glue job", name, Change.UPDATED)


def remove_job(clients: Clients, reporter: Reporter, name: str) -> None:
    with aws_errors(f"Glue job {name}"):
        if get_or_none(lambda: clients.glue.get_job(JobName=name)) is None:
            reporter.record("glue job", name, Change.ABSENT)
            return
        clients.glue.delete_job(JobName=name)
        reporter.record("glue job", name, Change.DELETED)


def trigger_definition(names: StackNames, options: DeployOptions) -> dict[str, Any]:
    """The daily start of the tables' upkeep job."""
    return {
        "Type": "SCHEDULED",
        "Schedule": options.maintenance_schedule,
        "Actions": [{"JobName": names.maintenance_job}],
        "Description": "Duff Beer orders: daily upkeep of the state's Iceberg tables",
    }


def ensure_trigger(
    clients: Clients,
    reporter: Reporter,
    name: str,
    definition: dict[str, Any],
    tags: dict[str, str],
) -> None:
    glue = clients.glue
    with aws_errors(f"Glue trigger {name}"):
        current = get_or_none(lambda: glue.get_trigger(Name=name))
        if current is not None:
            trigger = current["Trigger"]
            if all(canonical(trigger.get(k)) == canonical(v) for k, v in definition.items()):
                # A trigger someone stopped would silently end the tables' upkeep.
                if trigger.get("State") in ("ACTIVATED", "ACTIVATING"):
                    reporter.record("glue trigger", name, Change.UNCHANGED)
                else:
                    glue.start_trigger(Name=name)
                    reporter.record("glue trigger", name, Change.UPDATED, "started again")
                return
            glue.delete_trigger(Name=name)
        glue.create_trigger(Name=name, StartOnCreation=True, Tags=tags, **definition)
        reporter.record(
            "glue trigger",
            name,
            Change.UPDATED if current else Change.CREATED,
            definition["Schedule"],
        )


def remove_trigger(clients: Clients, reporter: Reporter, name: str) -> None:
    with aws_errors(f"Glue trigger {name}"):
        if get_or_none(lambda: clients.glue.get_trigger(Name=name)) is None:
            reporter.record("glue trigger", name, Change.ABSENT)
            return
        clients.glue.delete_trigger(Name=name)
        reporter.record("glue trigger", name, Change.DELETED)


def ensure_catalog_schema(clients: Clients, reporter: Reporter, database: str, bucket: str) -> None:
    """The database, the batch history's tables and the views over the state's tables,
    through the catalog step's own definitions (the same `ensure_catalog` runs in the
    Catalog step for every batch). The state's Iceberg tables themselves are created by
    the state job, through Iceberg's catalog."""
    try:
        with aws_errors(f"Glue database {database}"):
            changes = ensure_catalog(clients.glue, database=database, bucket=bucket)
    except CatalogError as e:
        raise DeploymentError(f"Glue catalog {database}: {e}") from e
    reporter.record(
        "glue database", database, Change.CREATED if changes.database_created else Change.UNCHANGED
    )
    for table in changes.tables_created:
        reporter.record("glue table/view", f"{database}.{table}", Change.CREATED)
    for table in changes.tables_updated:
        reporter.record("glue table/view", f"{database}.{table}", Change.UPDATED)
    if not changes.tables_created and not changes.tables_updated:
        reporter.record("glue tables and views", database, Change.UNCHANGED)


def remove_database(clients: Clients, reporter: Reporter, name: str) -> None:
    with aws_errors(f"Glue database {name}"):
        if get_or_none(lambda: clients.glue.get_database(Name=name)) is None:
            reporter.record("glue database", name, Change.ABSENT)
            return
        clients.glue.delete_database(Name=name)
        reporter.record("glue database", name, Change.DELETED, "with its tables")


def workgroup_configuration(names: StackNames, options: DeployOptions) -> dict[str, Any]:
    return {
        "ResultConfiguration": {
            "OutputLocation": f"s3://{names.processed_bucket}/{naming.ATHENA_RESULTS_PREFIX}",
            "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
        },
        "EnforceWorkGroupConfiguration": True,
        "PublishCloudWatchMetricsEnabled": True,
        "BytesScannedCutoffPerQuery": options.athena_bytes_scanned_cutoff,
        "EngineVersion": {"SelectedEngineVersion": "Athena engine version 3"},
    }


def _get_workgroup(athena: Any, name: str) -> dict[str, Any] | None:
    try:
        found = athena.get_work_group(WorkGroup=name).get("WorkGroup")
        return dict(found) if found else None
    except ClientError as e:
        # Athena reports a missing workgroup as InvalidRequestException.
        if error_code(e) in {"InvalidRequestException", "ResourceNotFoundException"}:
            return None
        raise


def _comparable_workgroup(config: dict[str, Any]) -> dict[str, Any]:
    result = config.get("ResultConfiguration", {})
    return {
        "output": result.get("OutputLocation"),
        "encryption": result.get("EncryptionConfiguration", {}).get("EncryptionOption"),
        "enforce": config.get("EnforceWorkGroupConfiguration"),
        "cutoff": config.get("BytesScannedCutoffPerQuery"),
        "metrics": config.get("PublishCloudWatchMetricsEnabled"),
        "engine": config.get("EngineVersion", {}).get("SelectedEngineVersion"),
    }


def ensure_workgroup(
    clients: Clients,
    reporter: Reporter,
    name: str,
    configuration: dict[str, Any],
    tags: list[dict[str, str]],
) -> None:
    athena = clients.athena
    with aws_errors(f"Athena workgroup {name}"):
        current = _get_workgroup(athena, name)
        if current is None:
            athena.create_work_group(
                Name=name,
                Configuration=configuration,
                Description="Duff Beer reports: enforced results location and scan cap",
                Tags=tags,
            )
            reporter.record("athena workgroup", name, Change.CREATED)
            return
        if _comparable_workgroup(current.get("Configuration", {})) == _comparable_workgroup(
            configuration
        ):
            reporter.record("athena workgroup", name, Change.UNCHANGED)
            return
        result = configuration["ResultConfiguration"]
        athena.update_work_group(
            WorkGroup=name,
            ConfigurationUpdates={
                "EnforceWorkGroupConfiguration": configuration["EnforceWorkGroupConfiguration"],
                "PublishCloudWatchMetricsEnabled": configuration["PublishCloudWatchMetricsEnabled"],
                "BytesScannedCutoffPerQuery": configuration["BytesScannedCutoffPerQuery"],
                # Engine version 3: Iceberg v2 tables and FOR VERSION AS OF.
                "EngineVersion": configuration["EngineVersion"],
                "ResultConfigurationUpdates": {
                    "OutputLocation": result["OutputLocation"],
                    "EncryptionConfiguration": result["EncryptionConfiguration"],
                },
            },
        )
        reporter.record("athena workgroup", name, Change.UPDATED)


def remove_workgroup(clients: Clients, reporter: Reporter, name: str) -> None:
    with aws_errors(f"Athena workgroup {name}"):
        if _get_workgroup(clients.athena, name) is None:
            reporter.record("athena workgroup", name, Change.ABSENT)
            return
        clients.athena.delete_work_group(WorkGroup=name, RecursiveDeleteOption=True)
        reporter.record("athena workgroup", name, Change.DELETED)
