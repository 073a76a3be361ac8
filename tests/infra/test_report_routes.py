"""The report's HTTP routes as deployed (the packaged template) and the handler agree on the tenant, and the
per-tenant IAM policy of docs/report.md grants exactly one tenant's routes.

API Gateway matches the route, fills `pathParameters` from its `{…}` segments and (for AWS_IAM routes)
authorizes `execute-api:Invoke` on `arn:…:{api}/{stage}/{METHOD}/{path}`: a tenant in the path is what IAM
can scope. These tests build each route's event the way API Gateway does from the template's RouteKey, so a
renamed parameter or route on either side fails here."""

from __future__ import annotations

import copy
import fnmatch
import json
import re

import pytest

from local.pipeline import build_function
from local.stack import REPORT
from tests.infra import cfn
from tests.infra.conftest import ROOT
from tests.lambdas.report.test_handler import LambdaContext, SelfInvocations, report_keys, sample

pytestmark = [pytest.mark.infra, pytest.mark.integration]

DOCS = ROOT / "docs" / "report.md"
API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


def route_keys(template) -> list[str]:
    return sorted(r["Properties"]["RouteKey"] for r in cfn.resources(template, "AWS::ApiGatewayV2::Route").values())


def event_for(route_key: str, values: dict[str, str], query: dict[str, str] | None = None) -> dict:
    """The payload-2.0 event API Gateway sends for `route_key` with its {parameters} set to `values`."""
    method, template_path = route_key.split(" ", 1)
    names = re.findall(r"\{(\w+)\}", template_path)
    path = template_path
    for name in names:
        path = path.replace("{" + name + "}", values[name])
    event = copy.deepcopy(sample("http_get.json"))
    event.update(
        routeKey=route_key,
        rawPath=path,
        pathParameters={name: values[name] for name in names},
        queryStringParameters=query,
        rawQueryString="&".join(f"{k}={v}" for k, v in (query or {}).items()),
    )
    event["requestContext"].update(routeKey=route_key)
    event["requestContext"]["http"].update(method=method, path=path)
    return event


def invoke_arn(route_key: str, values: dict[str, str]) -> str:
    """The resource ARN IAM evaluates for a request on this route ($default stage)."""
    method, template_path = route_key.split(" ", 1)
    path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template_path)
    return f"{API}/$default/{method}{path}"


def test_the_handler_reads_the_tenant_of_the_deployed_routes_path(stack, template):
    start, status = route_keys(template)  # "GET /reports/{tenant_id}", "GET /reports/{tenant_id}/{report_id}"
    range_ = {"from": "2024-05-01", "to": "2024-05-31"}
    function = build_function(stack, REPORT)
    with SelfInvocations(stack.aws) as invocations:
        started = function(event_for(start, {"tenant_id": "valencia-ruzafa"}, range_), LambdaContext())
        assert started["statusCode"] == 202, started["body"]
        # A tenant in the query string is never read, not even to override the path's.
        other = function(
            event_for(start, {"tenant_id": "valencia-ruzafa"}, {**range_, "tenant_id": "madrid-centro"}),
            LambdaContext(),
        )
        assert other["statusCode"] == 400
    (call,) = invocations.calls
    assert call["Payload"]["report_job"]["tenant_id"] == "valencia-ruzafa"
    assert {key.split("/")[1] for key in report_keys(stack)} == {"valencia-ruzafa"}

    report_id = json.loads(started["body"])["report_id"]
    own = function(event_for(status, {"tenant_id": "valencia-ruzafa", "report_id": report_id}), LambdaContext())
    assert own["statusCode"] == 200 and json.loads(own["body"])["tenant_id"] == "valencia-ruzafa"
    # Another tenant's path never reaches this tenant's report, whatever the id.
    theirs = function(event_for(status, {"tenant_id": "madrid-centro", "report_id": report_id}), LambdaContext())
    assert theirs["statusCode"] == 404


def documented_policy() -> dict:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    (policy,) = [json.loads(b) for b in blocks if "execute-api:Invoke" in b]
    return policy


def test_the_documented_per_tenant_policy_grants_one_tenants_routes_only(template):
    policy = documented_policy()
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "execute-api:Invoke"
    patterns = statement["Resource"]
    tenant = "valencia-ruzafa"  # the tenant of the example
    start, status = route_keys(template)
    report_id = "2024-05-01_2024-05-31_20240601T090000123456Z_9f86d081"

    def allowed(arn: str) -> bool:
        # IAM resource wildcards: * matches any characters (including '/'), ? one character.
        return any(fnmatch.fnmatchcase(arn, pattern.replace("<api-id>", "a1b2c3d4e5")) for pattern in patterns)

    assert allowed(invoke_arn(start, {"tenant_id": tenant}))
    assert allowed(invoke_arn(status, {"tenant_id": tenant, "report_id": report_id}))
    for other in ("madrid-centro", "valencia-ruzafa-2", "valencia"):
        assert not allowed(invoke_arn(start, {"tenant_id": other})), other
        assert not allowed(invoke_arn(status, {"tenant_id": other, "report_id": report_id})), other
