"""The process a local Lambda worker runs: imports the handler once, then serves invocations.

Started by `lambda_runner` as `python -P lambda_bootstrap.py` with PYTHONPATH set to the
function's extracted code only, so the handler imports exactly what its zip holds (plus the
interpreter's site-packages, which stand for a layer). Standard library only: nothing from
the project may be importable here except through the zip.

Protocol: one JSON document per line. Requests arrive on the file descriptor named by
DUFFBEER_LAMBDA_REQUEST_FD, responses leave on DUFFBEER_LAMBDA_RESPONSE_FD; stdout and
stderr are the function's log stream, as on Lambda.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any

REQUEST_FD_VAR = "DUFFBEER_LAMBDA_REQUEST_FD"
RESPONSE_FD_VAR = "DUFFBEER_LAMBDA_RESPONSE_FD"


class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name: str = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version: str = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb: int = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name: str = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name: str = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.invoked_function_arn: str = str(request.get("function_arn", ""))
        self.aws_request_id: str = str(request.get("request_id", ""))
        self.identity = None
        self.client_context = None
        self._deadline_ms = int(request.get("deadline_ms", 0))

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(error_type: str, message: str, stack: list[str] | None = None) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message, "stackTrace": stack or []}


def _exception_payload(exc: BaseException, skip_frames: int = 0) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)[skip_frames:]
    stack = traceback.format_list(frames)
    return _error(type(exc).__name__, str(exc), [line.rstrip("\n") for line in stack])


def _load_handler() -> Any:
    spec = os.environ["_HANDLER"]
    module_name, _, function_name = spec.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {spec!r} is not of the form module.function")
    module = importlib.import_module(module_name)
    return getattr(module, function_name)


def _respond(stream: Any, ok: bool, payload: Any) -> None:
    stream.write(json.dumps({"ok": ok, "payload": payload}).encode("utf-8") + b"\n")
    stream.flush()


def _log_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _invoke(handler: Any, request: dict[str, Any]) -> tuple[bool, Any]:
    """(True, JSON text of the result) or (False, the error document)."""
    try:
        result = handler(request["event"], LambdaContext(request))
    except Exception as exc:  # the function error the caller (Step Functions, S3) sees
        traceback.print_exc()
        # Frame 0 is this bootstrap's call into the handler: not the function's stack.
        return False, _exception_payload(exc, skip_frames=1)
    try:
        return True, json.dumps(result)
    except (TypeError, ValueError) as exc:
        return False, _error("Runtime.MarshalError", f"Unable to marshal response: {exc}")
    finally:
        sys.stdout.flush()


def main() -> int:
    requests = os.fdopen(int(os.environ[REQUEST_FD_VAR]), "rb")
    responses = os.fdopen(int(os.environ[RESPONSE_FD_VAR]), "wb")
    init_error: dict[str, Any] | None = None
    handler: Any = None
    try:
        handler = _load_handler()
    except Exception as exc:  # an init failure is reported to the caller, as on Lambda
        traceback.print_exc()
        init_error = _exception_payload(exc)
        init_error["errorType"] = f"Runtime.ImportModuleError: {init_error['errorType']}"
    # Init is over (as Lambda's init phase): the invocation timeout starts from requests only.
    _respond(responses, True, "ready")
    for line in requests:
        request = json.loads(line)
        if init_error is not None:
            _respond(responses, False, init_error)
            # Lambda retries the init on the next invocation: a fresh worker does that.
            return 1
        request_id = request["request_id"]
        version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        # The same START/END/REPORT lines Lambda writes around each invocation's log output.
        _log_line(f"START RequestId: {request_id} Version: {version}")
        started = time.monotonic()
        ok, payload = _invoke(handler, request)
        sys.stderr.flush()
        _log_line(f"END RequestId: {request_id}")
        duration = (time.monotonic() - started) * 1000
        _log_line(f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms")
        _respond(responses, ok, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
