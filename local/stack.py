"""One stage on the local AWS stand-in: the packaged serverless.yml template, deployed into moto's CloudFormation.

    stack = create_stack(aws, "local")   # package (cached) -> create_stack in moto -> fill the gaps -> describe

``aws`` (lambdas.adapters.clients.AwsClients) is how everything here reaches the stand-in (local.moto_server.LocalAws
.clients); the resulting ``LocalStack.aws`` is what the local pipeline and the tests build the functions with.

Nothing here describes a resource: the template (local/template.py packages it, offline) is the only description.
moto's CloudFormation creates most of it for real (buckets, queues with their redrive policy, the table with its
stream, the functions with their resolved environment, roles, log groups, the topic). What it does not create is
listed once, in ``GAPS``, each entry with why and, when the local pipeline needs it, how it is applied from the
template's own properties. tests/local/test_stack.py fails when moto starts supporting an entry (so the list
shrinks on upgrades) and when the template gains a resource type that neither moto nor the list covers.

The event source mappings are ``WITHHELD``: moto would try to run the function in Docker on every message and
record (and drain the stream). They are removed before ``create_stack``; their properties, resolved, are what the
local pollers (local/sqs_poller.py, local/stream_poller.py) run with (``LocalStack.event_source``). The handlers'
environment, timeout and memory are read back from the deployed functions (``LocalStack.functions``).

Adding a function or resource to serverless.yml: nothing to do here when moto's CloudFormation supports its
type; otherwise add a ``Gap`` (docs/infrastructure.md, "The local stack").
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from botocore.exceptions import ClientError

import pipeline_config as config
from lambdas.adapters.clients import AwsClients
from local.template import packaged_template

# The serverless.yml function keys (`serverless logs -f <key>`); CloudFormation names them <Key>LambdaFunction.
INGESTION = "ingestarTickets"
STREAM = "actualizarComprasStream"
REPORT = "generarReporteCompras"
COMPACTION = "compactarCompras"
# Logical ids of the template's data resources (config/infrastructure/storage.yml, alarms.yml).
DATA_BUCKET = "DataBucket"
PURCHASES_TABLE = "PurchasesTable"
INGEST_QUEUE = "IngestQueue"
INGEST_DLQ = "IngestDeadLetterQueue"
STREAM_FAILURE_QUEUE = "StreamFailureQueue"
GLUE_DATABASE = "GlueDatabase"
GLUE_TABLE = "GlueComprasTable"
ATHENA_WORKGROUP = "AthenaWorkGroup"
ALARM_TOPIC = "AlarmTopic"

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
WITHHELD = MappingProxyType(
    {
        "AWS::Lambda::EventSourceMapping": (
            "moto would invoke the function in Docker on every message / stream record (failing without Docker "
            "and draining the stream); local/sqs_poller.py and local/stream_poller.py drive the handlers with "
            "these mappings' properties instead"
        ),
    }
)


# --------------------------------------------------------------------------------------------- intrinsics


class UnresolvableError(LookupError):
    """A template value uses an intrinsic function or attribute the local resolver does not know."""


_SUB = re.compile(r"\$\{([^}]+)\}")


@dataclass
class Deployment:
    """A created stack: its template and what each logical id became (physical ids), to resolve intrinsics."""

    template: dict[str, Any]
    physical: dict[str, str]
    account_id: str
    region: str
    stack_name: str
    aws: AwsClients = field(repr=False, compare=False)

    def resource(self, logical_id: str) -> dict[str, Any]:
        return self.template["Resources"][logical_id]

    def resolve(self, value: Any) -> Any:
        """The value with Ref, Fn::GetAtt, Fn::Sub, Fn::Join and Fn::If resolved (as CloudFormation would)."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "Ref":
                return self.ref(inner)
            if key == "Fn::GetAtt":
                logical_id, attribute = inner if isinstance(inner, list) else inner.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub":
                text, variables = (inner, {}) if isinstance(inner, str) else (inner[0], self.resolve(inner[1]))
                return _SUB.sub(lambda m: self._sub_variable(m.group(1), variables), text)
            if key == "Fn::Join":
                separator, parts = inner
                return separator.join(str(p) for p in self.resolve(parts))
            if key == "Fn::If":
                condition, when_true, when_false = inner
                return self.resolve(when_true if self.condition(condition) else when_false)
            if key.startswith("Fn::"):
                raise UnresolvableError(f"intrinsic {key} is not resolved locally: {value!r}")
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub_variable(self, name: str, variables: Mapping[str, Any]) -> str:
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return str(variables[name])
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return str(self.get_att(logical_id, attribute))
        return str(self.ref(name))

    def condition(self, name: str) -> bool:
        return bool(self._evaluate(self.template.get("Conditions", {})[name]))

    def _evaluate(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, inner),) = value.items()
            if key == "Fn::Equals":
                left, right = (self._evaluate(v) for v in inner)
                return left == right
            if key == "Fn::Not":
                return not self._evaluate(inner[0])
            if key == "Fn::And":
                return all(self._evaluate(v) for v in inner)
            if key == "Fn::Or":
                return any(self._evaluate(v) for v in inner)
            if key == "Condition":
                return self.condition(inner)
        return self.resolve(value)

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.physical:
            return self.physical[name]
        resource = self.resource(name)  # KeyError: not in the template at all
        named = {  # Ref of resource types moto skips (GAPS) = their name
            "AWS::Glue::Database": lambda p: p["DatabaseInput"]["Name"],
            "AWS::Athena::WorkGroup": lambda p: p["Name"],
        }.get(resource["Type"])
        if named is None:
            raise UnresolvableError(f"Ref {name} ({resource['Type']}): no physical id and no local rule")
        return self.resolve(named(resource["Properties"]))

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind = self.resource(logical_id)["Type"]
        physical = self.physical[logical_id]
        partition, region, account = "aws", self.region, self.account_id
        if attribute == "Arn":
            arns = {
                "AWS::SQS::Queue": lambda: f"arn:{partition}:sqs:{region}:{account}:{physical.rsplit('/', 1)[-1]}",
                "AWS::S3::Bucket": lambda: f"arn:{partition}:s3:::{physical}",
                "AWS::DynamoDB::Table": lambda: f"arn:{partition}:dynamodb:{region}:{account}:table/{physical}",
                "AWS::Lambda::Function": lambda: f"arn:{partition}:lambda:{region}:{account}:function:{physical}",
                "AWS::SNS::Topic": lambda: physical,
                "AWS::IAM::Role": lambda: f"arn:{partition}:iam::{account}:role/{physical}",
            }
            if kind in arns:
                return arns[kind]()
        if (kind, attribute) == ("AWS::DynamoDB::Table", "StreamArn"):
            return self.aws.client("dynamodb").describe_table(TableName=physical)["Table"]["LatestStreamArn"]
        if (kind, attribute) == ("AWS::SQS::Queue", "QueueName"):
            return physical.rsplit("/", 1)[-1]
        raise UnresolvableError(f"Fn::GetAtt {logical_id}.{attribute} ({kind}) is not resolved locally")

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resolve(self.resource(logical_id).get("Properties", {}))

    def of_type(self, resource_type: str) -> list[str]:
        return [k for k, r in self.template["Resources"].items() if r["Type"] == resource_type]


# --------------------------------------------------------------------------------------------- the gaps


Apply = Callable[[Deployment, str], None]
Probe = Callable[[Deployment, str], bool]


@dataclass(frozen=True)
class Gap:
    """Something of the template that moto's CloudFormation does not create.

    ``prop`` None: the whole resource type is skipped (moto logs "No Moto CloudFormation support"); otherwise
    the resource is created without that property. ``apply`` (None: deliberately not applied, ``why`` says why)
    creates it from the template's resolved properties. ``probe`` (property gaps) tells whether a deployed
    resource has the property: tests/local/test_stack.py checks moto still drops it."""

    resource_type: str
    prop: str | None
    why: str
    apply: Apply | None = None
    probe: Probe | None = None


def _client(service: str, deployment: Deployment) -> Any:
    return deployment.aws.client(service)


def _s3_exists(call: Callable[[], Any], missing: tuple[str, ...]) -> bool:
    try:
        call()
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] in missing:
            return False
        raise


def _bucket_notification(d: Deployment, logical_id: str) -> None:
    declared = d.properties(logical_id)["NotificationConfiguration"]
    unsupported = set(declared) - {"QueueConfigurations"}
    if unsupported:
        raise UnresolvableError(f"{logical_id}: NotificationConfiguration {sorted(unsupported)} not applied locally")
    queues = [
        {
            "QueueArn": q["Queue"],
            "Events": [q["Event"]],
            **({"Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}}} if "Filter" in q else {}),
        }
        for q in declared.get("QueueConfigurations", [])
    ]
    _client("s3", d).put_bucket_notification_configuration(
        Bucket=d.physical[logical_id], NotificationConfiguration={"QueueConfigurations": queues}
    )


def _has_notification(d: Deployment, logical_id: str) -> bool:
    configuration = _client("s3", d).get_bucket_notification_configuration(Bucket=d.physical[logical_id])
    return bool(configuration.get("QueueConfigurations"))


def _versioning(d: Deployment, logical_id: str) -> None:
    status = d.properties(logical_id)["VersioningConfiguration"]["Status"]
    _client("s3", d).put_bucket_versioning(Bucket=d.physical[logical_id], VersioningConfiguration={"Status": status})


def _has_versioning(d: Deployment, logical_id: str) -> bool:
    return "Status" in _client("s3", d).get_bucket_versioning(Bucket=d.physical[logical_id])


def _lifecycle(d: Deployment, logical_id: str) -> None:
    rules = []
    for rule in d.properties(logical_id)["LifecycleConfiguration"]["Rules"]:
        converted: dict[str, Any] = {
            "ID": rule["Id"],
            "Status": rule["Status"],
            "Filter": {"Prefix": rule.get("Prefix", "")},
        }
        if "ExpirationInDays" in rule:
            converted["Expiration"] = {"Days": rule["ExpirationInDays"]}
        if "NoncurrentVersionExpiration" in rule:
            converted["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
            }
        if "AbortIncompleteMultipartUpload" in rule:
            converted["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
        rules.append(converted)
    _client("s3", d).put_bucket_lifecycle_configuration(
        Bucket=d.physical[logical_id], LifecycleConfiguration={"Rules": rules}
    )


def _has_lifecycle(d: Deployment, logical_id: str) -> bool:
    s3 = _client("s3", d)
    return _s3_exists(
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=d.physical[logical_id]), ("NoSuchLifecycleConfiguration",)
    )


def _public_access_block(d: Deployment, logical_id: str) -> None:
    _client("s3", d).put_public_access_block(
        Bucket=d.physical[logical_id],
        PublicAccessBlockConfiguration=d.properties(logical_id)["PublicAccessBlockConfiguration"],
    )


def _has_public_access_block(d: Deployment, logical_id: str) -> bool:
    s3 = _client("s3", d)
    return _s3_exists(
        lambda: s3.get_public_access_block(Bucket=d.physical[logical_id]), ("NoSuchPublicAccessBlockConfiguration",)
    )


def _ownership(d: Deployment, logical_id: str) -> None:
    _client("s3", d).put_bucket_ownership_controls(
        Bucket=d.physical[logical_id], OwnershipControls=d.properties(logical_id)["OwnershipControls"]
    )


def _has_ownership(d: Deployment, logical_id: str) -> bool:
    s3 = _client("s3", d)
    return _s3_exists(
        lambda: s3.get_bucket_ownership_controls(Bucket=d.physical[logical_id]), ("OwnershipControlsNotFoundError",)
    )


def _pitr(d: Deployment, logical_id: str) -> None:
    enabled = d.properties(logical_id)["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
    _client("dynamodb", d).update_continuous_backups(
        TableName=d.physical[logical_id],
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": bool(enabled)},
    )


def _has_pitr(d: Deployment, logical_id: str) -> bool:
    description = _client("dynamodb", d).describe_continuous_backups(TableName=d.physical[logical_id])
    status = description["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
    return status.get("PointInTimeRecoveryStatus") == "ENABLED"


def _has_table_sse(d: Deployment, logical_id: str) -> bool:
    return "SSEDescription" in _client("dynamodb", d).describe_table(TableName=d.physical[logical_id])["Table"]


def _has_layers(d: Deployment, logical_id: str) -> bool:
    return bool(_client("lambda", d).get_function_configuration(FunctionName=d.physical[logical_id]).get("Layers"))


def _queue_policy(d: Deployment, logical_id: str) -> None:
    props = d.properties(logical_id)
    sqs = _client("sqs", d)
    for queue_url in props["Queues"]:
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})


def _topic_policy(d: Deployment, logical_id: str) -> None:
    props = d.properties(logical_id)
    sns = _client("sns", d)
    for topic_arn in props["Topics"]:
        sns.set_topic_attributes(
            TopicArn=topic_arn, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"])
        )


def _glue_database(d: Deployment, logical_id: str) -> None:
    props = d.properties(logical_id)
    _client("glue", d).create_database(CatalogId=props["CatalogId"], DatabaseInput=props["DatabaseInput"])


def _glue_table(d: Deployment, logical_id: str) -> None:
    props = d.properties(logical_id)
    _client("glue", d).create_table(
        CatalogId=props["CatalogId"], DatabaseName=props["DatabaseName"], TableInput=props["TableInput"]
    )


def _athena_workgroup(d: Deployment, logical_id: str) -> None:
    props = d.properties(logical_id)
    configuration = dict(props.get("WorkGroupConfiguration", {}))
    _client("athena", d).create_work_group(
        Name=props["Name"], Description=props.get("Description", ""), Configuration=configuration
    )


_NO_HTTP_API = "not applied: no HTTP API locally; `python -m local.report` runs the report code directly"
_TLS_DENY = (
    "not applied: its TLS-only Deny would refuse every request of the plain-HTTP local endpoint (moto enforces "
    "bucket policies); tests/infra checks the statement"
)

GAPS: tuple[Gap, ...] = (
    Gap(
        "AWS::S3::Bucket",
        "NotificationConfiguration",
        "dropped: uploads would notify nothing",
        _bucket_notification,
        _has_notification,
    ),
    Gap("AWS::S3::Bucket", "VersioningConfiguration", "dropped", _versioning, _has_versioning),
    Gap("AWS::S3::Bucket", "LifecycleConfiguration", "dropped", _lifecycle, _has_lifecycle),
    Gap("AWS::S3::Bucket", "PublicAccessBlockConfiguration", "dropped", _public_access_block, _has_public_access_block),
    Gap("AWS::S3::Bucket", "OwnershipControls", "dropped", _ownership, _has_ownership),
    Gap("AWS::DynamoDB::Table", "PointInTimeRecoverySpecification", "dropped", _pitr, _has_pitr),
    Gap(
        "AWS::DynamoDB::Table",
        "SSESpecification",
        "dropped; not applied: moto cannot change a table's encryption after creation (nothing is at rest)",
        None,
        _has_table_sse,
    ),
    Gap(
        "AWS::Lambda::Function",
        "Layers",
        "dropped; not applied: the handlers run in this process with the virtualenv's Powertools (the version "
        "requirements.txt pins, which tests/infra checks against the layer's)",
        None,
        _has_layers,
    ),
    Gap("AWS::S3::BucketPolicy", None, _TLS_DENY),
    Gap("AWS::SQS::QueuePolicy", None, "skipped", _queue_policy),
    Gap("AWS::SNS::TopicPolicy", None, "skipped", _topic_policy),
    Gap("AWS::SNS::Subscription", None, "skipped; not applied: no e-mail leaves the local stand-in"),
    Gap("AWS::Glue::Database", None, "skipped: the stream function registers partitions in it", _glue_database),
    Gap("AWS::Glue::Table", None, "skipped: the stream function copies its storage descriptor", _glue_table),
    Gap("AWS::Athena::WorkGroup", None, "skipped", _athena_workgroup),
    Gap("AWS::ApiGatewayV2::Api", None, _NO_HTTP_API),
    Gap("AWS::ApiGatewayV2::Stage", None, _NO_HTTP_API),
    Gap("AWS::ApiGatewayV2::Integration", None, _NO_HTTP_API),
    Gap("AWS::ApiGatewayV2::Route", None, _NO_HTTP_API),
    Gap(
        "AWS::Lambda::EventInvokeConfig",
        None,
        "skipped; not applied: moto runs no Lambda, so there are no asynchronous invocations to configure (the "
        "report's HTTP jobs are driven through the handler; the compactarCompras schedule is stood in for by "
        "LocalPipeline.compact, local/compaction.py; tests/infra checks the no-retry / max-age settings)",
    ),
    Gap(
        "AWS::CloudWatch::Alarm",
        None,
        "skipped; not applied: no metric reaches CloudWatch locally (EMF goes to the Lambda log file)",
    ),
)
# The order GAPS are applied in: resources (Glue database before its table), then properties.
_APPLY_ORDER = ("AWS::Glue::Database",)


def fill_gaps(deployment: Deployment) -> list[str]:
    """Apply every applicable gap entry to the resources of the template; returns what was applied."""
    applied = []
    entries = sorted(GAPS, key=lambda g: (g.prop is not None, g.resource_type not in _APPLY_ORDER))
    for gap in entries:
        if gap.apply is None:
            continue
        for logical_id in deployment.of_type(gap.resource_type):
            resource = deployment.resource(logical_id)
            if "Condition" in resource and not deployment.condition(resource["Condition"]):
                continue
            if gap.prop is not None and gap.prop not in resource.get("Properties", {}):
                continue
            gap.apply(deployment, logical_id)
            applied.append(f"{logical_id}.{gap.prop}" if gap.prop else logical_id)
    return applied


# --------------------------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class DeployedFunction:
    """A function as moto's Lambda holds it after the deployment (its resolved configuration)."""

    key: str  # the serverless.yml function key, e.g. ingestarTickets
    logical_id: str
    name: str  # deployed name, e.g. compras-local-ingestarTickets
    arn: str
    handler: str
    timeout_seconds: int
    memory_mb: int
    environment: Mapping[str, str]


@dataclass(frozen=True)
class EventSourceMapping:
    """An event source mapping of the template (withheld from moto), its properties resolved."""

    logical_id: str
    function: DeployedFunction
    source_arn: str
    batch_size: int
    maximum_batching_window_seconds: int
    function_response_types: tuple[str, ...]
    starting_position: str | None
    bisect_batch_on_function_error: bool
    maximum_retry_attempts: int  # -1: until the record expires
    maximum_record_age_seconds: int  # -1: no limit
    on_failure_arn: str | None
    maximum_concurrency: int | None
    enabled: bool

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class LocalStack:
    stack_name: str
    names: config.StackNames
    template: dict[str, Any] = field(repr=False)
    functions: Mapping[str, DeployedFunction]
    event_sources: tuple[EventSourceMapping, ...]
    ingest_queue_url: str
    ingest_queue_arn: str
    ingest_dlq_url: str
    ingest_dlq_arn: str
    stream_failure_queue_url: str
    stream_failure_queue_arn: str
    table_stream_arn: str
    aws: AwsClients = field(repr=False, compare=False)  # the clients of the stand-in it is deployed in
    applied_gaps: tuple[str, ...] = ()

    def event_source(self, function_key: str) -> EventSourceMapping:
        """The (only) event source mapping of a function."""
        (mapping,) = [m for m in self.event_sources if m.function.key == function_key]
        return mapping

    def lambda_environment(self, function_key: str = INGESTION) -> dict[str, str]:
        """The environment of a deployed function, as Lambda gives it to the handler."""
        return dict(self.functions[function_key].environment)


def _queue_url(sqs: Any, arn: str) -> str:
    return sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]


def deploy_template(aws: AwsClients, template: dict[str, Any], stack_name: str, region: str) -> Deployment:
    """create_stack of `template` (event source mappings withheld) in moto; waits for CREATE_COMPLETE."""
    deployable = json.loads(json.dumps(template))
    for logical_id in [k for k, r in deployable["Resources"].items() if r["Type"] in WITHHELD]:
        del deployable["Resources"][logical_id]
    cloudformation = aws.client("cloudformation")
    cloudformation.create_stack(StackName=stack_name, TemplateBody=json.dumps(deployable), Capabilities=CAPABILITIES)
    deadline = time.monotonic() + 120
    while True:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"stack {stack_name} still {stack['StackStatus']} after 120 s")
        time.sleep(0.05)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {stack_name}: {stack['StackStatus']} ({stack.get('StackStatusReason')})")
    physical = {}
    paginator = cloudformation.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack_name):
        for summary in page["StackResourceSummaries"]:
            if summary.get("PhysicalResourceId") and summary["LogicalResourceId"]:
                physical[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
    account_id = aws.client("sts").get_caller_identity()["Account"]
    return Deployment(
        template=template, physical=physical, account_id=account_id, region=region, stack_name=stack_name, aws=aws
    )


def _functions(deployment: Deployment) -> dict[str, DeployedFunction]:
    lam = _client("lambda", deployment)
    found = {}
    for logical_id in deployment.of_type("AWS::Lambda::Function"):
        configuration = lam.get_function_configuration(FunctionName=deployment.physical[logical_id])
        key = logical_id.removesuffix("LambdaFunction")
        key = key[0].lower() + key[1:]
        found[key] = DeployedFunction(
            key=key,
            logical_id=logical_id,
            name=configuration["FunctionName"],
            arn=configuration["FunctionArn"],
            handler=configuration["Handler"],
            timeout_seconds=int(configuration["Timeout"]),
            memory_mb=int(configuration["MemorySize"]),
            environment=MappingProxyType(dict(configuration.get("Environment", {}).get("Variables", {}))),
        )
    return found


def _event_sources(deployment: Deployment, functions: Mapping[str, DeployedFunction]) -> tuple[EventSourceMapping, ...]:
    by_arn = {f.arn: f for f in functions.values()}
    mappings = []
    for logical_id in deployment.of_type("AWS::Lambda::EventSourceMapping"):
        p = deployment.properties(logical_id)
        failure = p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        mappings.append(
            EventSourceMapping(
                logical_id=logical_id,
                function=by_arn[p["FunctionName"]],
                source_arn=p["EventSourceArn"],
                batch_size=int(p.get("BatchSize", 10 if ":sqs:" in p["EventSourceArn"] else 100)),
                maximum_batching_window_seconds=int(p.get("MaximumBatchingWindowInSeconds", 0)),
                function_response_types=tuple(p.get("FunctionResponseTypes", [])),
                starting_position=p.get("StartingPosition"),
                bisect_batch_on_function_error=bool(p.get("BisectBatchOnFunctionError", False)),
                maximum_retry_attempts=int(p.get("MaximumRetryAttempts", -1)),
                maximum_record_age_seconds=int(p.get("MaximumRecordAgeInSeconds", -1)),
                on_failure_arn=failure,
                maximum_concurrency=p.get("ScalingConfig", {}).get("MaximumConcurrency"),
                enabled=bool(p.get("Enabled", True)),
            )
        )
    return tuple(mappings)


def describe(deployment: Deployment, stage: str, applied: list[str]) -> LocalStack:
    """The LocalStack view of a deployed (and gap-filled) stack."""
    sqs = _client("sqs", deployment)
    functions = _functions(deployment)
    arn = deployment.get_att
    names = config.StackNames(
        stage=stage,
        account_id=deployment.account_id,
        region=deployment.region,
        table=deployment.physical[PURCHASES_TABLE],
        bucket=deployment.physical[DATA_BUCKET],
        ingest_queue=arn(INGEST_QUEUE, "QueueName"),
        ingest_dlq=arn(INGEST_DLQ, "QueueName"),
        stream_failure_queue=arn(STREAM_FAILURE_QUEUE, "QueueName"),
        glue_database=deployment.ref(GLUE_DATABASE),
        glue_table=deployment.properties(GLUE_TABLE)["TableInput"]["Name"],
        athena_workgroup=deployment.ref(ATHENA_WORKGROUP),
        alarm_topic=deployment.physical[ALARM_TOPIC].rsplit(":", 1)[-1],
    )
    return LocalStack(
        stack_name=deployment.stack_name,
        names=names,
        template=deployment.template,
        functions=MappingProxyType(functions),
        event_sources=_event_sources(deployment, functions),
        ingest_queue_url=_queue_url(sqs, arn(INGEST_QUEUE, "Arn")),
        ingest_queue_arn=arn(INGEST_QUEUE, "Arn"),
        ingest_dlq_url=_queue_url(sqs, arn(INGEST_DLQ, "Arn")),
        ingest_dlq_arn=arn(INGEST_DLQ, "Arn"),
        stream_failure_queue_url=_queue_url(sqs, arn(STREAM_FAILURE_QUEUE, "Arn")),
        stream_failure_queue_arn=arn(STREAM_FAILURE_QUEUE, "Arn"),
        table_stream_arn=arn(PURCHASES_TABLE, "StreamArn"),
        aws=deployment.aws,
        applied_gaps=tuple(applied),
    )


def create_stack(aws: AwsClients, stage: str = "local", *, progress: Any = None) -> LocalStack:
    """Deploy the packaged template of `stage` into the moto server ``aws`` talks to (see module doc)."""
    region = aws.region or config.raw_config()["region"]
    template = packaged_template(stage, progress=progress)
    deployment = deploy_template(aws, template, f"{config.raw_config()['service']}-{stage}", region)
    applied = fill_gaps(deployment)
    return describe(deployment, stage, applied)
