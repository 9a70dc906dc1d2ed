"""IAM roles: one per function, one for the Glue job, one for the state machine."""

from __future__ import annotations

import urllib.parse
from typing import Any

from deploy.core import Change, Clients, Reporter, aws_errors, canonical, get_or_none

INLINE_POLICY_NAME = "least-privilege"


def _decoded(document: Any) -> Any:
    # IAM returns policy documents URL-encoded (boto3 decodes some responses, not all).
    if isinstance(document, str):
        return urllib.parse.unquote(document)
    return document


def ensure_role(
    clients: Clients,
    reporter: Reporter,
    name: str,
    *,
    trust: dict[str, Any],
    policy: dict[str, Any],
    tags: list[dict[str, str]],
) -> str:
    iam = clients.iam
    with aws_errors(f"IAM role {name}"):
        existing = get_or_none(lambda: iam.get_role(RoleName=name))
        if existing is None:
            arn = str(
                iam.create_role(
                    RoleName=name,
                    AssumeRolePolicyDocument=canonical(trust),
                    Description="Duff Beer orders pipeline (least privilege)",
                    Tags=tags,
                )["Role"]["Arn"]
            )
            reporter.record("iam role", name, Change.CREATED)
        else:
            arn = str(existing["Role"]["Arn"])
            current_trust = _decoded(existing["Role"]["AssumeRolePolicyDocument"])
            if canonical(current_trust) == canonical(trust):
                reporter.record("iam role", name, Change.UNCHANGED)
            else:
                iam.update_assume_role_policy(RoleName=name, PolicyDocument=canonical(trust))
                reporter.record("iam role", name, Change.UPDATED, "trust policy")
        current = get_or_none(
            lambda: iam.get_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME)
        )
        if current and canonical(_decoded(current["PolicyDocument"])) == canonical(policy):
            reporter.record("iam inline policy", name, Change.UNCHANGED)
        else:
            iam.put_role_policy(
                RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=canonical(policy)
            )
            reporter.record(
                "iam inline policy", name, Change.UPDATED if current else Change.CREATED
            )
    return arn


def remove_role(clients: Clients, reporter: Reporter, name: str) -> None:
    iam = clients.iam
    with aws_errors(f"IAM role {name}"):
        if get_or_none(lambda: iam.get_role(RoleName=name)) is None:
            reporter.record("iam role", name, Change.ABSENT)
            return
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        iam.delete_role(RoleName=name)
        reporter.record("iam role", name, Change.DELETED)
