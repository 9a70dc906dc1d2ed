"""S3: both buckets (encryption, public access block, TLS-only policy, lifecycle), the trigger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deploy import iam
from deploy.core import Change, Clients, Reporter, aws_errors, canonical, get_or_none, retry_on
from deploy.stack import DeployOptions, StackArns
from duffbeer import history, naming

_ENCRYPTION = {
    "Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
    ]
}
_PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
_OWNERSHIP = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
_ABORT_UPLOADS_DAYS = 7
# Both buckets are versioned: the input so that a run reads exactly the upload its event
# announced, even if the key is overwritten meanwhile; the processed bucket so that what a
# faulty job or clean-up overwrites or deletes can be restored (docs/deploy.md).
_VERSIONING = {"Status": "Enabled"}


def lifecycle_rules(options: DeployOptions, processed: bool) -> list[dict[str, Any]]:
    """Incomplete uploads everywhere; replaced versions, temporary query results and
    quarantined files expire."""
    rules: list[dict[str, Any]] = [
        {
            "ID": "abort-incomplete-multipart-uploads",
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": _ABORT_UPLOADS_DAYS},
        }
    ]
    if not processed:
        # Versions replaced by a newer upload of the same key are kept long enough for any
        # run of them (and its quarantine copy) to finish, then expire.
        rules.append(
            {
                "ID": "expire-replaced-input-versions",
                "Filter": {"Prefix": ""},
                "Status": "Enabled",
                "NoncurrentVersionExpiration": {
                    "NoncurrentDays": options.input_version_retention_days
                },
            }
        )
    if processed:
        rules += [
            {
                # Overwritten and deleted objects (Iceberg's removed files, cleaned-up runs,
                # expired quarantine) stay restorable this long, then go; so do the delete
                # markers left with no version behind them.
                "ID": "expire-replaced-processed-versions",
                "Filter": {"Prefix": ""},
                "Status": "Enabled",
                "Expiration": {"ExpiredObjectDeleteMarker": True},
                "NoncurrentVersionExpiration": {
                    "NoncurrentDays": options.processed_version_retention_days
                },
            },
            {
                "ID": "expire-athena-results",
                "Filter": {"Prefix": naming.ATHENA_RESULTS_PREFIX},
                "Status": "Enabled",
                "Expiration": {"Days": options.athena_results_retention_days},
            },
            {
                "ID": "expire-quarantine",
                "Filter": {"Prefix": naming.QUARANTINE_PREFIX},
                "Status": "Enabled",
                "Expiration": {"Days": options.quarantine_retention_days},
            },
            {
                # The run index's entries of quarantined runs go with their reports.
                "ID": "expire-quarantined-history",
                "Filter": {
                    "And": {
                        "Prefix": naming.HISTORY_PREFIX,
                        "Tags": [history.QUARANTINED_TAG],
                    }
                },
                "Status": "Enabled",
                "Expiration": {"Days": options.quarantine_retention_days},
            },
        ]
    return rules


def _bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise


def _ensure_setting(
    reporter: Reporter, bucket: str, kind: str, *, current: Any, desired: Any, put: Any
) -> None:
    if current is not None and canonical(current) == canonical(desired):
        reporter.record(kind, bucket, Change.UNCHANGED)
        return
    put()
    reporter.record(kind, bucket, Change.CREATED if current is None else Change.UPDATED)


def ensure_bucket(
    clients: Clients,
    reporter: Reporter,
    options: DeployOptions,
    arns: StackArns,
    bucket: str,
    *,
    processed: bool,
) -> None:
    s3 = clients.s3
    with aws_errors(f"S3 bucket {bucket}"):
        if _bucket_exists(s3, bucket):
            reporter.record("s3 bucket", bucket, Change.UNCHANGED)
        else:
            params: dict[str, Any] = {"Bucket": bucket}
            if options.region != "us-east-1":
                params["CreateBucketConfiguration"] = {"LocationConstraint": options.region}
            s3.create_bucket(**params)
            reporter.record("s3 bucket", bucket, Change.CREATED)

        current_ownership = get_or_none(lambda: s3.get_bucket_ownership_controls(Bucket=bucket))
        _ensure_setting(
            reporter,
            bucket,
            "s3 object ownership",
            current=current_ownership and current_ownership["OwnershipControls"],
            desired=_OWNERSHIP,
            put=lambda: s3.put_bucket_ownership_controls(
                Bucket=bucket, OwnershipControls=_OWNERSHIP
            ),
        )
        current_pab = get_or_none(lambda: s3.get_public_access_block(Bucket=bucket))
        _ensure_setting(
            reporter,
            bucket,
            "s3 public access block",
            current=current_pab and current_pab["PublicAccessBlockConfiguration"],
            desired=_PUBLIC_ACCESS_BLOCK,
            put=lambda: s3.put_public_access_block(
                Bucket=bucket, PublicAccessBlockConfiguration=_PUBLIC_ACCESS_BLOCK
            ),
        )
        current_sse = get_or_none(lambda: s3.get_bucket_encryption(Bucket=bucket))
        _ensure_setting(
            reporter,
            bucket,
            "s3 default encryption",
            current=current_sse and current_sse["ServerSideEncryptionConfiguration"],
            desired=_ENCRYPTION,
            put=lambda: s3.put_bucket_encryption(
                Bucket=bucket, ServerSideEncryptionConfiguration=_ENCRYPTION
            ),
        )
        if options.enforce_tls:
            policy = iam.tls_only_bucket_policy(arns, bucket)
            current_policy = get_or_none(lambda: s3.get_bucket_policy(Bucket=bucket))
            _ensure_setting(
                reporter,
                bucket,
                "s3 bucket policy",
                current=current_policy and current_policy["Policy"],
                desired=policy,
                put=lambda: s3.put_bucket_policy(Bucket=bucket, Policy=canonical(policy)),
            )
        else:
            reporter.record("s3 bucket policy", bucket, Change.SKIPPED, "plain-HTTP endpoint")
        # A bucket never versioned answers without a Status (not set yet, like a new bucket).
        versioning = get_or_none(lambda: s3.get_bucket_versioning(Bucket=bucket)) or {}
        _ensure_setting(
            reporter,
            bucket,
            "s3 versioning",
            current={"Status": versioning["Status"]} if versioning.get("Status") else None,
            desired=_VERSIONING,
            put=lambda: s3.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration=_VERSIONING
            ),
        )
        rules = lifecycle_rules(options, processed)
        current_rules = get_or_none(lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket))
        _ensure_setting(
            reporter,
            bucket,
            "s3 lifecycle rules",
            current=current_rules and _comparable_rules(current_rules["Rules"]),
            desired=_comparable_rules(rules),
            put=lambda: s3.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration={"Rules": rules}
            ),
        )


def _comparable_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # S3 may echo extra defaults; compare only the fields this stack sets.
    keys = (
        "ID",
        "Filter",
        "Status",
        "Expiration",
        "AbortIncompleteMultipartUpload",
        "NoncurrentVersionExpiration",
    )
    return sorted(
        ({key: rule[key] for key in keys if key in rule} for rule in rules),
        key=lambda rule: str(rule.get("ID")),
    )


def notification_configuration(function_arn: str) -> dict[str, Any]:
    """Every new object in the input bucket reaches start_etl (R2). No suffix filter: S3's
    filters are case-sensitive, so `.CSV` would be dropped silently; start_etl decides, and an
    object that is not a CSV fails visibly (quarantine record and alert)."""
    return {
        "LambdaFunctionConfigurations": [
            {
                "Id": "start-etl-on-object-created",
                "LambdaFunctionArn": function_arn,
                "Events": ["s3:ObjectCreated:*"],
            }
        ]
    }


def _comparable_notification(config: dict[str, Any]) -> list[dict[str, Any]]:
    result = []
    for item in config.get("LambdaFunctionConfigurations", []):
        rules = item.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        result.append(
            {
                "arn": item["LambdaFunctionArn"],
                "events": sorted(item["Events"]),
                "rules": sorted((rule["Name"].lower(), rule["Value"]) for rule in rules),
            }
        )
    return result


def ensure_notification(
    clients: Clients, reporter: Reporter, bucket: str, function_arn: str
) -> None:
    s3 = clients.s3
    desired = notification_configuration(function_arn)
    with aws_errors(f"S3 notification on {bucket}"):
        current = get_or_none(lambda: s3.get_bucket_notification_configuration(Bucket=bucket))
        current = current or {}
        if _comparable_notification(current) == _comparable_notification(desired):
            reporter.record("s3 notification", bucket, Change.UNCHANGED)
            return
        # S3 validates the destination through the function's resource policy, which may
        # not be visible yet right after AddPermission.
        retry_on(
            {"InvalidArgument"},
            lambda: s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration=desired
            ),
            waiting_for=f"S3 to see the permission that lets {bucket} invoke the function",
            message="Unable to validate the following destination configurations",
        )
        reporter.record(
            "s3 notification",
            bucket,
            Change.UPDATED if current.get("LambdaFunctionConfigurations") else Change.CREATED,
        )


def _object_count(s3: Any, bucket: str) -> int:
    versions = s3.list_object_versions(Bucket=bucket, MaxKeys=1)
    return len(versions.get("Versions", [])) + len(versions.get("DeleteMarkers", []))


def _delete_versions(s3: Any, bucket: str, prefix: str = "") -> int:
    """Delete every version and delete marker under `prefix` (the buckets are versioned:
    deleting by key alone would leave the objects restorable and the bucket not empty)."""
    deleted = 0
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        objects = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if objects:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
            deleted += len(objects)
    return deleted


@dataclass(frozen=True)
class BucketData:
    """What a bucket holds beyond what deploy uploaded: every object version and delete
    marker (the buckets are versioned), and the bytes of the versions."""

    bucket: str
    versions: int
    size_bytes: int


def data_held(clients: Clients, bucket: str, owned_prefixes: tuple[str, ...] = ()) -> BucketData:
    """The data `remove_bucket(..., delete_data=True)` would delete from `bucket`."""
    s3 = clients.s3
    versions = size = 0
    with aws_errors(f"S3 bucket {bucket}"):
        if not _bucket_exists(s3, bucket):
            return BucketData(bucket, 0, 0)
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                if not item["Key"].startswith(owned_prefixes):
                    versions += 1
                    size += int(item.get("Size", 0))
    return BucketData(bucket, versions, size)


def remove_bucket(
    clients: Clients,
    reporter: Reporter,
    bucket: str,
    *,
    delete_data: bool,
    owned_prefixes: tuple[str, ...] = (),
) -> bool:
    """Delete the bucket; one holding data only with delete_data. True when it is gone.

    Objects under `owned_prefixes` (what deploy itself uploaded, e.g. artifacts/) are not
    data: they are removed first, so a stack that never ran a batch is removed without
    delete_data.
    """
    s3 = clients.s3
    with aws_errors(f"S3 bucket {bucket}"):
        if not _bucket_exists(s3, bucket):
            reporter.record("s3 bucket", bucket, Change.ABSENT)
            return True
        for prefix in owned_prefixes:
            deleted = _delete_versions(s3, bucket, prefix)
            if deleted:
                reporter.record("s3 objects", f"{bucket}/{prefix}", Change.DELETED, f"{deleted}")
        if _object_count(s3, bucket):
            if not delete_data:
                reporter.record(
                    "s3 bucket", bucket, Change.KEPT, "holds data; --delete-data deletes it"
                )
                return False
            deleted = _delete_versions(s3, bucket)
            reporter.record("s3 objects", bucket, Change.DELETED, f"{deleted} object versions")
        s3.delete_bucket(Bucket=bucket)
        reporter.record("s3 bucket", bucket, Change.DELETED)
        return True
