"""Clients that read the account and answer every write themselves: the deploy sequence run
with them reports what a deploy would create, change or leave alone, and changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.model import OperationModel, Shape

from deploy.core import Clients
from duffbeer import aws

# Operations that only read. Anything else is a write and never reaches the account.
READ_OPERATIONS = ("Get", "List", "Describe", "Head")
# Every identifier a made-up write response holds (letters and '-' stay as they are in a URL,
# so a later request naming the resource is recognised whatever its protocol).
PENDING = "pending-until-deploy"
_NOT_FOUND = "ResourceNotFoundException"


class ReadOnlyClients(Clients):
    """`Clients` whose reads go to the account and whose writes are answered here.

    A write gets a response of the shape AWS would give, identifiers set to PENDING. A read
    naming a PENDING resource (one this run would have created) gets what AWS gives for a
    resource just created: an empty collection, or not found for a single resource.
    """

    def __init__(self, region: str, endpoint_url: str | None, profile: str | None = None) -> None:
        super().__init__(region, endpoint_url, profile)
        self._clients: dict[str, Any] = {}
        # Buckets this run would create: named by the caller, not by a made-up response.
        self._pending_buckets: set[str] = set()

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._clients:
            client = aws.new_client(
                service.replace("_", "-"), self.region, self.endpoint_url, self.profile
            )
            client.meta.events.register("before-parameter-build.s3.CreateBucket", self._bucket)
            client.meta.events.register("before-call.*.*", self._answer)
            self._clients[service] = client
        return self._clients[service]

    def _bucket(self, params: dict[str, Any], **_: Any) -> None:
        self._pending_buckets.add(str(params["Bucket"]))

    def _names_pending(self, request: dict[str, Any]) -> bool:
        text = repr(request)
        return PENDING in text or any(bucket in text for bucket in self._pending_buckets)

    def _answer(
        self, model: OperationModel, params: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        name = model.name
        if name.startswith(READ_OPERATIONS):
            if not self._names_pending(params):
                return None  # an ordinary read: the account answers
            if _is_collection(model):
                return _response(200, made_up(model.output_shape, set()))
            return _response(404, {"Error": {"Code": _NOT_FOUND, "Message": "not created yet"}})
        return _response(200, made_up(model.output_shape, set()))


def _is_collection(model: OperationModel) -> bool:
    """A read listing things (List*, or API Gateway's `items` pages) rather than getting one."""
    output = model.output_shape
    members = getattr(output, "members", {}) if output is not None else {}
    return model.name.startswith("List") or "items" in members


def _response(status: int, parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    parsed.setdefault("ResponseMetadata", {"HTTPStatusCode": status})
    return AWSResponse(None, status, {}, None), parsed


def made_up(shape: Shape | None, seen: set[str]) -> Any:
    """A value of `shape` as a write just made would return it: empty collections, zero
    numbers, PENDING strings (a recursive shape stops at its first repetition)."""
    if shape is None:
        return {}
    kind = shape.type_name
    if kind == "structure":
        if shape.name in seen:
            return {}
        inner = seen | {shape.name}
        members: dict[str, Shape] = shape.members
        return {key: made_up(member, inner) for key, member in members.items()}
    values: dict[str, Any] = {
        "list": [],
        "map": {},
        "string": PENDING,
        "integer": 0,
        "long": 0,
        "float": 0.0,
        "double": 0.0,
        "boolean": False,
        "blob": b"",
        "timestamp": dt.datetime.now(dt.UTC),
    }
    return values.get(kind)
