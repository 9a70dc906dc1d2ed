"""API Gateway (REST): the report routes proxied to orders_api, a throttled stage, API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploy.core import Change, Clients, Reporter, aws_errors, get_or_none
from deploy.stack import API_ROUTES, API_STAGE, PUBLIC_ROUTES, DeployOptions, StackNames


@dataclass(frozen=True)
class ApiOutputs:
    api_id: str
    url: str
    api_key_id: str


def integration_uri(region: str, function_arn: str, partition: str = "aws") -> str:
    return (
        f"arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/"
        f"{function_arn}/invocations"
    )


def invoke_url(api_id: str, region: str) -> str:
    return f"https://{api_id}.execute-api.{region}.amazonaws.com/{API_STAGE}"


def _find_rest_api(apigw: Any, name: str) -> str | None:
    for page in apigw.get_paginator("get_rest_apis").paginate():
        for item in page.get("items", []):
            if item["name"] == name:
                return str(item["id"])
    return None


def _ensure_resource(apigw: Any, api_id: str, paths: dict[str, str], path: str) -> tuple[str, bool]:
    """The resource id of `path`, creating missing parents; True when something was created."""
    if path in paths:
        return paths[path], False
    parent_path, _, part = path.rpartition("/")
    parent_id, _ = _ensure_resource(apigw, api_id, paths, parent_path or "/")
    created = apigw.create_resource(restApiId=api_id, parentId=parent_id, pathPart=part)
    paths[path] = str(created["id"])
    return paths[path], True


def _ensure_route(
    apigw: Any, api_id: str, resource_id: str, path: str, uri: str
) -> tuple[Change, list[str]]:
    changes = []
    key_required = path not in PUBLIC_ROUTES
    method = get_or_none(
        lambda: apigw.get_method(restApiId=api_id, resourceId=resource_id, httpMethod="GET")
    )
    if method is None:
        params = {"method.request.path.client_id": True} if "{client_id}" in path else {}
        apigw.put_method(
            restApiId=api_id,
            resourceId=resource_id,
            httpMethod="GET",
            authorizationType="NONE",
            apiKeyRequired=key_required,
            requestParameters=params,
        )
        changes.append("method")
    elif bool(method.get("apiKeyRequired")) != key_required:
        apigw.update_method(
            restApiId=api_id,
            resourceId=resource_id,
            httpMethod="GET",
            patchOperations=[
                {"op": "replace", "path": "/apiKeyRequired", "value": str(key_required).lower()}
            ],
        )
        changes.append("api key requirement")
    integration = (method or {}).get("methodIntegration")
    if not integration or integration.get("uri") != uri or integration.get("type") != "AWS_PROXY":
        apigw.put_integration(
            restApiId=api_id,
            resourceId=resource_id,
            httpMethod="GET",
            type="AWS_PROXY",
            integrationHttpMethod="POST",
            uri=uri,
            timeoutInMillis=29000,
        )
        changes.append("integration")
    if method is None:
        return Change.CREATED, []
    return (Change.UPDATED if changes else Change.UNCHANGED), changes


def _throttle_settings(stage: dict[str, Any]) -> tuple[Any, Any]:
    settings = stage.get("methodSettings", {}).get("*/*", {})
    return settings.get("throttlingRateLimit"), settings.get("throttlingBurstLimit")


def ensure_api(
    clients: Clients,
    reporter: Reporter,
    names: StackNames,
    options: DeployOptions,
    *,
    function_arn: str,
    tags: dict[str, str],
) -> ApiOutputs:
    apigw = clients.apigateway
    uri = integration_uri(options.region, function_arn)
    with aws_errors(f"REST API {names.api}"):
        api_id = _find_rest_api(apigw, names.api)
        if api_id is None:
            created = apigw.create_rest_api(
                name=names.api,
                description="Duff Beer orders reports",
                endpointConfiguration={"types": ["REGIONAL"]},
                apiKeySource="HEADER",
                tags=tags,
            )
            api_id = str(created["id"])
            # A new API holds only its root resource.
            paths = {"/": str(created["rootResourceId"])}
            reporter.record("rest api", names.api, Change.CREATED, api_id)
        else:
            resources = apigw.get_resources(restApiId=api_id, limit=500)["items"]
            paths = {item["path"]: item["id"] for item in resources}
            reporter.record("rest api", names.api, Change.UNCHANGED, api_id)
        api_changed = False
        for route in API_ROUTES:
            resource_id, created = _ensure_resource(apigw, api_id, paths, route)
            change, changes = _ensure_route(apigw, api_id, resource_id, route, uri)
            api_changed = api_changed or created or change is not Change.UNCHANGED
            reporter.record("api route", f"GET {route}", change, ", ".join(changes))
        stage = get_or_none(lambda: apigw.get_stage(restApiId=api_id, stageName=API_STAGE))
        if stage is None:
            apigw.create_deployment(
                restApiId=api_id, stageName=API_STAGE, description="create_workflow.py"
            )
            stage = {}  # a stage just created has no method settings yet
            reporter.record("api deployment", f"{names.api}/{API_STAGE}", Change.CREATED)
        elif api_changed:
            # Point the existing stage at a new deployment; its settings (as read) are kept.
            deployment = apigw.create_deployment(restApiId=api_id, description="create_workflow.py")
            apigw.update_stage(
                restApiId=api_id,
                stageName=API_STAGE,
                patchOperations=[
                    {"op": "replace", "path": "/deploymentId", "value": deployment["id"]}
                ],
            )
            reporter.record("api deployment", f"{names.api}/{API_STAGE}", Change.CREATED)
        else:
            reporter.record("api deployment", f"{names.api}/{API_STAGE}", Change.UNCHANGED)
        desired = (float(options.api_rate_limit), int(options.api_burst_limit))
        current = _throttle_settings(stage)
        if current[0] is not None and (float(current[0]), int(current[1])) == desired:
            reporter.record("api stage throttling", API_STAGE, Change.UNCHANGED)
        else:
            apigw.update_stage(
                restApiId=api_id,
                stageName=API_STAGE,
                patchOperations=[
                    {
                        "op": "replace",
                        "path": "/*/*/throttling/rateLimit",
                        "value": str(desired[0]),
                    },
                    {
                        "op": "replace",
                        "path": "/*/*/throttling/burstLimit",
                        "value": str(desired[1]),
                    },
                    {"op": "replace", "path": "/*/*/metrics/enabled", "value": "true"},
                ],
            )
            reporter.record(
                "api stage throttling",
                API_STAGE,
                Change.CREATED if current[0] is None else Change.UPDATED,
                f"{desired[0]} rps",
            )
        key_id = _ensure_usage_plan(apigw, reporter, names, options, api_id=api_id, tags=tags)
    return ApiOutputs(api_id=api_id, url=invoke_url(api_id, options.region), api_key_id=key_id)


def _ensure_usage_plan(
    apigw: Any,
    reporter: Reporter,
    names: StackNames,
    options: DeployOptions,
    *,
    api_id: str,
    tags: dict[str, str],
) -> str:
    plans = [p for p in apigw.get_usage_plans(limit=500)["items"] if p["name"] == names.usage_plan]
    throttle = {"rateLimit": float(options.api_rate_limit), "burstLimit": options.api_burst_limit}
    quota = {"limit": options.api_quota_per_day, "period": "DAY"}
    if plans:
        plan = plans[0]
        reporter.record("api usage plan", names.usage_plan, Change.UNCHANGED)
    else:
        plan = apigw.create_usage_plan(
            name=names.usage_plan,
            description="Per-key throttling and daily quota for the orders API",
            apiStages=[{"apiId": api_id, "stage": API_STAGE}],
            throttle=throttle,
            quota=quota,
            tags=tags,
        )
        reporter.record("api usage plan", names.usage_plan, Change.CREATED)
    keys = [
        k
        for k in apigw.get_api_keys(nameQuery=names.api_key, limit=500)["items"]
        if k["name"] == names.api_key
    ]
    if keys:
        key_id = str(keys[0]["id"])
        reporter.record("api key", names.api_key, Change.UNCHANGED, key_id)
    else:
        key_id = str(apigw.create_api_key(name=names.api_key, enabled=True, tags=tags)["id"])
        reporter.record("api key", names.api_key, Change.CREATED, key_id)
    linked = {k["id"] for k in apigw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]}
    if key_id not in linked:
        apigw.create_usage_plan_key(usagePlanId=plan["id"], keyId=key_id, keyType="API_KEY")
        reporter.record("api usage plan key", names.api_key, Change.CREATED)
    return key_id


def remove_api(clients: Clients, reporter: Reporter, names: StackNames) -> None:
    apigw = clients.apigateway
    with aws_errors(f"REST API {names.api}"):
        for plan in apigw.get_usage_plans(limit=500)["items"]:
            if plan["name"] == names.usage_plan:
                for key in apigw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]:
                    apigw.delete_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"])
                # A plan still attached to a stage cannot be deleted.
                apigw.update_usage_plan(
                    usagePlanId=plan["id"],
                    patchOperations=[
                        {
                            "op": "remove",
                            "path": "/apiStages",
                            "value": f"{stage['apiId']}:{stage['stage']}",
                        }
                        for stage in plan.get("apiStages", [])
                    ],
                )
                apigw.delete_usage_plan(usagePlanId=plan["id"])
                reporter.record("api usage plan", names.usage_plan, Change.DELETED)
        for key in apigw.get_api_keys(nameQuery=names.api_key, limit=500)["items"]:
            if key["name"] == names.api_key:
                apigw.delete_api_key(apiKey=key["id"])
                reporter.record("api key", names.api_key, Change.DELETED)
        api_id = _find_rest_api(apigw, names.api)
        if api_id is None:
            reporter.record("rest api", names.api, Change.ABSENT)
            return
        apigw.delete_rest_api(restApiId=api_id)
        reporter.record("rest api", names.api, Change.DELETED, api_id)
