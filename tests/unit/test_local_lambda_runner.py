"""The local Lambda runner: zip code in worker processes, isolation, errors, timeouts."""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from duffbeer_local.lambda_runner import FunctionSpec, LambdaRuntime, RuntimeSettings

HANDLER = textwrap.dedent(
    """
    import json, os, sys, time

    class OrderRejectedError(Exception):
        pass

    def handler(event, context):
        action = event.get("action")
        if action == "fail":
            raise OrderRejectedError(f"order {event['order_id']} rejected")
        if action == "sleep":
            time.sleep(event["seconds"])
        if action == "not_json":
            return {1, 2}
        if action == "exit":
            os._exit(3)
        try:
            import duffbeer_local  # the project must not leak into the function
            leaked = True
        except ImportError:
            leaked = False
        print(json.dumps({"message": "handled", "event": event}))
        return {
            "event": event,
            "greeting": os.environ["GREETING"],
            "function_name": context.function_name,
            "memory": context.memory_limit_in_mb,
            "endpoint": os.environ["AWS_ENDPOINT_URL"],
            "module_file": __file__,
            "project_importable": leaked,
            "pid": os.getpid(),
        }
    """
)


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _spec(code: bytes, handler: str = "app.handler", timeout: float = 10) -> FunctionSpec:
    return FunctionSpec(
        name="orders-fn",
        arn="arn:aws:lambda:us-east-1:123456789012:function:orders-fn",
        handler=handler,
        code_zip=code,
        code_sha256=hashlib.sha256(code).hexdigest(),
        environment={"GREETING": "hello"},
        timeout_seconds=timeout,
        memory_mb=256,
    )


@pytest.fixture
def runtime(tmp_path: Path) -> LambdaRuntime:
    rt = LambdaRuntime(RuntimeSettings(state_dir=tmp_path, endpoint_url="http://127.0.0.1:1"))
    yield rt
    rt.close()


@pytest.fixture
def spec() -> FunctionSpec:
    return _spec(_zip({"app.py": HANDLER}))


def test_handler_runs_from_extracted_zip_with_function_environment(
    runtime: LambdaRuntime, spec: FunctionSpec, tmp_path: Path
) -> None:
    # Given a function whose zip holds app.py
    # When it is invoked
    result = runtime.invoke(spec, {"order_id": 5678})
    # Then the handler's own return value comes back, run from the extracted code only
    assert result.is_error is False
    body = json.loads(result.payload)
    code_dir = tmp_path / "lambda" / "code" / spec.code_sha256[:24]
    assert {k: body[k] for k in ("event", "greeting", "function_name", "memory", "endpoint")} == {
        "event": {"order_id": 5678},
        "greeting": "hello",
        "function_name": "orders-fn",
        "memory": 256,
        "endpoint": "http://127.0.0.1:1",
    }
    assert Path(body["module_file"]) == code_dir / "app.py"
    assert body["project_importable"] is False
    # And its output came back framed as Lambda frames it, and went to the function's log file
    lines = result.logs.splitlines()
    assert lines[0].startswith("START RequestId: ")
    assert lines[1] == json.dumps({"message": "handled", "event": {"order_id": 5678}})
    assert lines[2].startswith("END RequestId: ")
    assert lines[3].startswith("REPORT RequestId: ") and "Duration: " in lines[3]
    log = (tmp_path / "logs" / "lambda" / "orders-fn.log").read_text()
    assert lines[1] in log


def test_exception_becomes_function_error_named_after_its_class(
    runtime: LambdaRuntime, spec: FunctionSpec
) -> None:
    result = runtime.invoke(spec, {"action": "fail", "order_id": 7})
    assert result.is_error is True
    error = result.error()
    assert error is not None
    assert (error["errorType"], error["errorMessage"]) == ("OrderRejectedError", "order 7 rejected")
    assert "app.py" in error["stackTrace"][0]
    assert "OrderRejectedError: order 7 rejected" in result.logs  # the traceback is logged


def test_warm_worker_is_reused_like_a_lambda_container(
    runtime: LambdaRuntime, spec: FunctionSpec
) -> None:
    first = json.loads(runtime.invoke(spec, {}).payload)["pid"]
    runtime.invoke(spec, {"action": "fail", "order_id": 1})
    second = json.loads(runtime.invoke(spec, {}).payload)["pid"]
    assert first == second


def test_cold_worker_per_invocation_when_reuse_is_off(tmp_path: Path, spec: FunctionSpec) -> None:
    settings = RuntimeSettings(
        state_dir=tmp_path, endpoint_url="http://127.0.0.1:1", reuse_workers=False
    )
    rt = LambdaRuntime(settings)
    try:
        pids = {json.loads(rt.invoke(spec, {}).payload)["pid"] for _ in range(2)}
    finally:
        rt.close()
    assert len(pids) == 2


def test_concurrent_invocations_get_their_own_workers(
    runtime: LambdaRuntime, spec: FunctionSpec
) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(
            pool.map(lambda _: runtime.invoke(spec, {"action": "sleep", "seconds": 1}), range(3))
        )
    assert [r.is_error for r in results] == [False, False, False]
    assert len({json.loads(r.payload)["pid"] for r in results}) == 3


def test_timeout_kills_the_worker_and_reports_sandbox_timeout(runtime: LambdaRuntime) -> None:
    spec = _spec(_zip({"app.py": HANDLER}), timeout=1)
    result = runtime.invoke(
        spec,
        {"action": "sleep", "seconds": 60},
    )
    error = result.error()
    assert error is not None
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in error["errorMessage"]
    # And the function still works afterwards, in a fresh worker
    assert runtime.invoke(spec, {}).is_error is False


def test_runtime_exit_and_marshal_errors(runtime: LambdaRuntime, spec: FunctionSpec) -> None:
    exited = runtime.invoke(spec, {"action": "exit"}).error()
    not_json = runtime.invoke(spec, {"action": "not_json"}).error()
    assert exited is not None and exited["errorType"] == "Runtime.ExitError"
    assert not_json is not None and not_json["errorType"] == "Runtime.MarshalError"


def test_import_failure_is_reported_as_import_module_error(runtime: LambdaRuntime) -> None:
    spec = _spec(_zip({"app.py": "import not_a_module_anywhere\n"}))
    error = runtime.invoke(spec, {}).error()
    assert error is not None
    assert error["errorType"] == "Runtime.ImportModuleError: ModuleNotFoundError"
    assert "not_a_module_anywhere" in error["errorMessage"]


def test_environment_sets_reserved_variables_after_function_ones(
    runtime: LambdaRuntime, tmp_path: Path
) -> None:
    code = _zip({"app.py": HANDLER})
    spec = FunctionSpec(
        name="f",
        arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        handler="app.handler",
        code_zip=code,
        code_sha256=hashlib.sha256(code).hexdigest(),
        environment={"AWS_REGION": "eu-west-1", "TABLE": "orders"},
        timeout_seconds=3,
    )
    env = runtime.environment(spec, tmp_path / "code", {"QUERY_BACKEND": "duckdb"})
    assert env["TABLE"] == "orders"
    assert env["QUERY_BACKEND"] == "duckdb"
    assert env["AWS_REGION"] == "us-east-1"  # reserved: the function cannot override it
    assert env["PYTHONPATH"] == str(tmp_path / "code")
    assert env["_HANDLER"] == "app.handler"
