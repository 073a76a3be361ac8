"""Properties of the packaged template (`serverless package --stage dev`), checked against
config/pipeline.yml and pipeline_config/ — the one source of truth both sides read."""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import zipfile

import pytest

import pipeline_config as config
from tests.infra import cfn
from tests.infra.conftest import ROOT, STAGE, package, report_artifact, require_serverless_cli, shared_directory

pytestmark = pytest.mark.infra

FUNCTIONS = {  # function block of config/pipeline.yml -> (serverless key, handler)
    "ingestion": ("IngestarTicketsLambdaFunction", "lambdas/ingestion/handler.handler"),
    "stream": ("ActualizarComprasStreamLambdaFunction", "lambdas/stream/handler.handler"),
    "report": ("GenerarReporteComprasLambdaFunction", "lambdas/report/handler.handler"),
    "compaction": ("CompactarComprasLambdaFunction", "lambdas/compaction/handler.handler"),
}
CFG = config.raw_config()


def dev_names() -> config.StackNames:
    return config.stack_names(STAGE)


def bucket_name_sub(stage: str = STAGE) -> str:
    """names.bucket with the stage resolved and the CloudFormation pseudo parameters kept."""
    return CFG["names"]["bucket"].replace("${sls:stage}", stage)


def function(template, block: str) -> dict:
    return cfn.resource(template, FUNCTIONS[block][0])["Properties"]


def powertools_pin() -> str:
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    match = re.search(r"^aws-lambda-powertools==(\S+)$", text, re.MULTILINE)
    assert match, "requirements.txt must pin aws-lambda-powertools"
    return match.group(1)


@pytest.fixture(scope="module")
def prod_template(tmp_path_factory):
    """Stage prod with a bucket name override and an alarm e-mail."""
    require_serverless_cli()
    out = tmp_path_factory.mktemp("package-prod")
    shared = shared_directory(tmp_path_factory)
    with (shared / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one Serverless CLI at a time in the service directory
        done = package(
            out,
            report_zip=report_artifact(shared),
            stage="prod",
            params={"bucketName": "acme-compras-prod-data", "alarmEmail": "ops@example.com"},
        )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((out / "cloudformation-template-update-stack.json").read_text(encoding="utf-8"))


# --- functions -------------------------------------------------------------------------------


def test_every_function_is_declared_with_config_settings(template):
    for block, (logical_id, handler) in FUNCTIONS.items():
        settings = config.function_settings(block)
        props = cfn.resource(template, logical_id)["Properties"]
        assert props["FunctionName"] == f"{CFG['service']}-{STAGE}-{settings['name']}"
        assert logical_id.startswith(settings["name"][0].upper() + settings["name"][1:])
        assert props["Handler"] == handler
        assert props["Timeout"] == settings["timeout"]
        assert props["MemorySize"] == settings["memorySize"]
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["x86_64"]


def test_powertools_layer_is_the_aws_managed_one_of_the_pinned_version(template):
    expected = f"{{{{resolve:ssm:/aws/service/powertools/python/x86_64/python3.12/{powertools_pin()}}}}}"
    for block in FUNCTIONS:
        assert function(template, block)["Layers"] == [{"Fn::Sub": expected}]


def test_each_functions_environment_is_the_configs_shared_and_own_variables_with_the_bucket_ref(template):
    """Every function gets exactly pipeline_config.lambda_environment() (BUCKET_NAME as a Ref to DataBucket, whose
    Fn::Sub name resolves to the config's bucket name) plus its own function_environment(block)."""
    expected = config.lambda_environment(dev_names())
    for block in FUNCTIONS:
        env = dict(function(template, block)["Environment"]["Variables"])
        assert env.pop("BUCKET_NAME") == {"Ref": "DataBucket"}
        expected_without_bucket = {k: v for k, v in expected.items() if k != "BUCKET_NAME"}
        expected_without_bucket |= config.function_environment(block)
        assert {k: str(v) for k, v in env.items()} == expected_without_bucket
    bucket = cfn.resource(template, "DataBucket")["Properties"]["BucketName"]
    assert bucket == {"Fn::Sub": bucket_name_sub()}
    # What Fn::Sub makes of it is what pipeline_config/ computes for the same account and region.
    resolved = bucket_name_sub().replace("${AWS::AccountId}", "123456789012").replace("${AWS::Region}", "us-east-1")
    assert resolved == expected["BUCKET_NAME"]


def test_sqs_event_source_matches_config(template):
    settings = config.function_settings("ingestion")
    (mapping,) = [
        m["Properties"]
        for m in cfn.resources(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    ]
    assert mapping["FunctionName"] == {"Fn::GetAtt": [FUNCTIONS["ingestion"][0], "Arn"]}
    assert mapping["BatchSize"] == settings["batchSize"]
    assert mapping["MaximumBatchingWindowInSeconds"] == settings["maximumBatchingWindow"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": settings["maximumConcurrency"]}


def test_stream_event_source_matches_config(template):
    settings = config.function_settings("stream")
    (mapping,) = [
        m["Properties"]
        for m in cfn.resources(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["PurchasesTable", "StreamArn"]}
    ]
    assert mapping["FunctionName"] == {"Fn::GetAtt": [FUNCTIONS["stream"][0], "Arn"]}
    assert mapping["BatchSize"] == settings["batchSize"]
    assert mapping["MaximumBatchingWindowInSeconds"] == settings["maximumBatchingWindow"]
    assert mapping["StartingPosition"] == settings["startingPosition"]
    assert mapping["BisectBatchOnFunctionError"] is settings["bisectBatchOnFunctionError"]
    assert mapping["MaximumRetryAttempts"] == settings["maximumRetryAttempts"]
    assert mapping["MaximumRecordAgeInSeconds"] == settings["maximumRecordAgeInSeconds"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": ["StreamFailureQueue", "Arn"]}}}


def test_report_routes_are_get_with_iam_authorization_and_the_tenant_in_the_path(template):
    settings = config.function_settings("report")
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in cfn.resources(template, "AWS::ApiGatewayV2::Route").values()
    }
    assert set(routes) == {f"GET {settings['httpPath']}", f"GET {settings['statusHttpPath']}"}
    assert set(routes) == {"GET /reports/{tenant_id}", "GET /reports/{tenant_id}/{report_id}"}
    for props in routes.values():
        assert props["AuthorizationType"] == "AWS_IAM"


def test_report_routes_are_throttled_from_config(template):
    settings = config.function_settings("report")
    (stage,) = cfn.resources(template, "AWS::ApiGatewayV2::Stage").values()
    defaults = stage["Properties"]["DefaultRouteSettings"]
    assert defaults["ThrottlingRateLimit"] == settings["throttlingRateLimit"]
    assert defaults["ThrottlingBurstLimit"] == settings["throttlingBurstLimit"]
    assert "RouteSettings" not in stage["Properties"]  # nothing overrides the default per route


def test_report_concurrency_is_reserved_from_config_except_in_lab_role_mode(packaged):
    settings = config.function_settings("report")
    least = function(packaged["leastPrivilege"].template, "report")
    assert least["ReservedConcurrentExecutions"] == settings["reservedConcurrency"]
    assert "ReservedConcurrentExecutions" not in function(packaged["labRole"].template, "report")
    for block in ("ingestion", "stream"):  # bounded by their event sources instead
        assert "ReservedConcurrentExecutions" not in function(packaged["leastPrivilege"].template, block)


def test_report_jobs_are_asynchronous_self_invocations_never_retried(packaged):
    settings = config.function_settings("report")
    for mode in ("leastPrivilege", "labRole"):
        configs = cfn.resources(packaged[mode].template, "AWS::Lambda::EventInvokeConfig").values()
        (invoke_config,) = [c for c in configs if c["Properties"]["FunctionName"] == {"Ref": FUNCTIONS["report"][0]}]
        props = invoke_config["Properties"]
        assert props["MaximumRetryAttempts"] == 0
        assert props["MaximumEventAgeInSeconds"] == settings["jobMaxEventAgeSeconds"]
    policy = cfn.resource(packaged["leastPrivilege"].template, "ReportSelfInvokePolicy")["Properties"]
    assert policy["Roles"] == [{"Ref": "ReportRole"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["lambda:InvokeFunction"]
    assert statement["Resource"] == [{"Fn::GetAtt": [FUNCTIONS["report"][0], "Arn"]}]


def test_package_holds_only_the_lambda_code(packaged):
    with zipfile.ZipFile(packaged["leastPrivilege"].artifact) as archive:
        names = archive.namelist()
    assert "athena-queries.sql" in names or not (ROOT / "athena-queries.sql").exists()
    assert any(n.startswith("lambdas/") for n in names)
    for name in names:
        assert name == "athena-queries.sql" or name.startswith("lambdas/"), name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name
        assert "/events/" not in name, f"sample events stay out of the package: {name}"


# --- queues ----------------------------------------------------------------------------------


def test_ingest_visibility_timeout_is_at_least_six_times_the_function_timeout(template):
    queue = cfn.resource(template, "IngestQueue")["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function(template, "ingestion")["Timeout"]
    assert queue["VisibilityTimeout"] == config.queue_settings()["ingestVisibilityTimeout"]


def test_ingest_queue_redrives_to_its_dlq(template):
    queue = cfn.resource(template, "IngestQueue")["Properties"]
    assert queue["QueueName"] == dev_names().ingest_queue
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]},
        "maxReceiveCount": config.queue_settings()["maxReceiveCount"],
    }
    assert cfn.resource(template, "IngestDeadLetterQueue")["Properties"]["QueueName"] == dev_names().ingest_dlq
    failures = cfn.resource(template, "StreamFailureQueue")["Properties"]
    assert failures["QueueName"] == dev_names().stream_failure_queue


def test_every_queue_is_encrypted(template):
    queues = cfn.resources(template, "AWS::SQS::Queue")
    assert len(queues) == 3
    for logical_id, queue in queues.items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, logical_id
        assert props["MessageRetentionPeriod"] == config.queue_settings()["messageRetentionSeconds"]


def test_every_queue_denies_requests_without_tls(template):
    """Each queue (ingest, its DLQ, the stream failure queue) has exactly one policy with a TLS-only Deny."""
    policies = cfn.resources(template, "AWS::SQS::QueuePolicy")
    covered = []
    for logical_id, policy in policies.items():
        props = policy["Properties"]
        (queue,) = props["Queues"]
        covered.append(queue["Ref"])
        denies = [s for s in props["PolicyDocument"]["Statement"] if _is_tls_only_deny(s)]
        assert len(denies) == 1, logical_id
        assert denies[0]["Action"] == "sqs:*"
        assert denies[0]["Resource"] == {"Fn::GetAtt": [queue["Ref"], "Arn"]}
    assert sorted(covered) == sorted(cfn.resources(template, "AWS::SQS::Queue"))


def _queue_policy_statements(template):
    policy = cfn.resource(template, "IngestQueuePolicy")["Properties"]
    assert policy["Queues"] == [{"Ref": "IngestQueue"}]
    return policy["PolicyDocument"]["Statement"]


def test_queue_policy_admits_only_this_bucket_of_this_account(template):
    allows = [s for s in _queue_policy_statements(template) if s["Effect"] == "Allow"]
    assert len(allows) == 1
    (allow,) = allows
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Resource"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert allow["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{bucket_name_sub()}"}},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }
    # CloudFormation creates the bucket (and validates its notification) only after the policy.
    assert "IngestQueuePolicy" in cfn.as_list(cfn.resource(template, "DataBucket")["DependsOn"])


def test_queue_policy_follows_the_bucket_name_override(prod_template):
    policy = cfn.resource(prod_template, "IngestQueuePolicy")["Properties"]["PolicyDocument"]
    (allow,) = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::acme-compras-prod-data"
    }
    bucket = cfn.resource(prod_template, "DataBucket")["Properties"]["BucketName"]
    assert bucket == {"Fn::Sub": "acme-compras-prod-data"}


# --- bucket ----------------------------------------------------------------------------------


def test_bucket_is_private_and_encrypted(template):
    props = cfn.resource(template, "DataBucket")["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")


def _is_tls_only_deny(statement) -> bool:
    return (
        statement["Effect"] == "Deny"
        and statement["Principal"] == "*"
        and statement["Condition"]
        in ({"Bool": {"aws:SecureTransport": "false"}}, {"Bool": {"aws:SecureTransport": False}})
    )


def test_bucket_policy_denies_every_request_without_tls(template):
    policy = cfn.resource(template, "DataBucketPolicy")["Properties"]
    assert policy["Bucket"] == {"Ref": "DataBucket"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert _is_tls_only_deny(statement)
    assert statement["Action"] == "s3:*"
    assert statement["Resource"] == [{"Fn::GetAtt": ["DataBucket", "Arn"]}, {"Fn::Sub": "${DataBucket.Arn}/*"}]


def test_only_uploads_csv_notifies_the_ingest_queue(template):
    notification = cfn.resource(template, "DataBucket")["Properties"]["NotificationConfiguration"]
    assert set(notification) == {"QueueConfigurations"}, "no Lambda/Topic notifications"
    (queue_config,) = notification["QueueConfigurations"]
    assert queue_config["Event"] == "s3:ObjectCreated:*"
    assert queue_config["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    prefixes = config.prefixes()
    assert queue_config["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": prefixes["uploads"]},
        {"Name": "suffix", "Value": prefixes["uploadsSuffix"]},
    ]
    # What the pipeline itself writes can never match the filter.
    for key in ("compras", "ingestReports", "reports", "athenaResults"):
        assert not prefixes[key].startswith(prefixes["uploads"]), key


# --- table, catalog, Athena -------------------------------------------------------------------


def test_table_is_on_demand_streamed_recoverable_encrypted(template):
    table = cfn.resource(template, "PurchasesTable")
    props = table["Properties"]
    keys = config.table_keys()
    assert props["TableName"] == dev_names().table
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [
        {"AttributeName": keys["partitionKey"], "KeyType": "HASH"},
        {"AttributeName": keys["sortKey"], "KeyType": "RANGE"},
    ]
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    # dev stages are disposable ...
    assert table["DeletionPolicy"] == "Delete"
    assert props["DeletionProtectionEnabled"] is False


def test_production_data_is_retained(prod_template):
    for logical_id in ("PurchasesTable", "DataBucket"):
        res = cfn.resource(prod_template, logical_id)
        assert res["DeletionPolicy"] == "Retain", logical_id
        assert res["UpdateReplacePolicy"] == "Retain", logical_id
    assert cfn.resource(prod_template, "PurchasesTable")["Properties"]["DeletionProtectionEnabled"] is True


def test_glue_table_follows_the_catalog_config(template):
    cat = config.catalog()
    names = dev_names()
    database = cfn.resource(template, "GlueDatabase")["Properties"]
    assert database["DatabaseInput"]["Name"] == names.glue_database
    table = cfn.resource(template, "GlueComprasTable")["Properties"]
    assert table["DatabaseName"] == {"Ref": "GlueDatabase"}
    table_input = table["TableInput"]
    assert table_input["Name"] == names.glue_table
    assert table_input["TableType"] == "EXTERNAL_TABLE"
    assert table_input["PartitionKeys"] == cat["partitionKeys"]
    assert [k["Name"] for k in cat["partitionKeys"]] == ["tenant_id", "year", "month", "day"]
    sd = table_input["StorageDescriptor"]
    assert sd["Columns"] == cat["columns"]
    assert sd["SerdeInfo"] == {"SerializationLibrary": cat["serde"], "Parameters": cat["serdeParameters"]}
    assert sd["InputFormat"] == cat["inputFormat"]
    assert sd["OutputFormat"] == cat["outputFormat"]
    assert sd["Location"] == {"Fn::Sub": f"s3://${{DataBucket}}/{config.prefixes()['compras']}"}


def test_athena_workgroup_enforces_encrypted_results(template):
    workgroup = cfn.resource(template, "AthenaWorkGroup")["Properties"]
    assert workgroup["Name"] == dev_names().athena_workgroup
    wg = workgroup["WorkGroupConfiguration"]
    assert wg["EnforceWorkGroupConfiguration"] is True
    assert wg["BytesScannedCutoffPerQuery"] == config.athena_settings()["bytesScannedCutoffPerQuery"]
    assert wg["ResultConfiguration"] == {
        "OutputLocation": {"Fn::Sub": f"s3://${{DataBucket}}/{config.prefixes()['athenaResults']}"},
        "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
    }


# --- alarms ------------------------------------------------------------------------------------


def _alarms(template):
    return [a["Properties"] for a in cfn.resources(template, "AWS::CloudWatch::Alarm").values()]


def test_alarm_on_dead_letters_and_stream_failures(template):
    for queue in ("IngestDeadLetterQueue", "StreamFailureQueue"):
        (alarm,) = [
            a
            for a in _alarms(template)
            if a["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
        ]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_alarm_on_stream_iterator_age_and_every_function_error(template):
    by_function: dict[str, set[str]] = {}
    for alarm in _alarms(template):
        if alarm["Namespace"] == "AWS/Lambda":
            (dimension,) = alarm["Dimensions"]
            by_function.setdefault(dimension["Value"]["Ref"], set()).add(alarm["MetricName"])
    for _block, (logical_id, _handler) in FUNCTIONS.items():
        assert "Errors" in by_function[logical_id], logical_id
    assert "IteratorAge" in by_function[FUNCTIONS["stream"][0]]
    (age,) = [a for a in _alarms(template) if a["MetricName"] == "IteratorAge"]
    assert age["Threshold"] == CFG["observability"]["streamIteratorAgeAlarmMs"]


def test_every_alarm_notifies_the_topic_and_email_is_optional(template, prod_template):
    for alarm in _alarms(template):
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    topic = cfn.resource(template, "AlarmTopic")["Properties"]
    assert topic["TopicName"] == dev_names().alarm_topic
    subscription = cfn.resource(template, "AlarmEmailSubscription")
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": ["", ""]}]}
    assert prod_template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": ["ops@example.com", ""]}]}
    assert cfn.resource(prod_template, "AlarmEmailSubscription")["Properties"]["Endpoint"] == "ops@example.com"


def test_outputs_say_who_gets_the_alarms_or_how_to_subscribe(template, prod_template):
    condition, _, nobody = template["Outputs"]["AlarmSubscription"]["Value"]["Fn::If"]
    assert condition == "HasAlarmEmail"
    assert nobody["Fn::Sub"].startswith("NOBODY receives the alarms")
    assert "aws sns subscribe --region ${AWS::Region} --topic-arn ${AlarmTopic} --protocol email" in nobody["Fn::Sub"]
    _, prod_subscribed, _ = prod_template["Outputs"]["AlarmSubscription"]["Value"]["Fn::If"]
    assert prod_subscribed["Fn::Sub"].startswith("ops@example.com is subscribed to ${AlarmTopic}")


def test_packaging_prod_without_alarm_email_warns_how_to_subscribe(tmp_path_factory):
    require_serverless_cli()
    shared = shared_directory(tmp_path_factory)
    with (shared / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one Serverless CLI at a time in the service directory
        done = package(
            tmp_path_factory.mktemp("package-prod-no-email"), report_zip=report_artifact(shared), stage="prod"
        )
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert 'alarmEmail: The alarm topic of stage "prod" has no subscriber' in output
    assert "aws sns subscribe --region us-east-1 --protocol email" in output


def test_the_alarm_email_check_warns_for_production_stages_only():
    script = (
        "const {check} = require('./tools/alarm_email_check.js');"
        "console.log(JSON.stringify(["
        "check({stage: 'prod', region: 'eu-west-1', alarmEmail: ''}).length,"
        "check({stage: 'prod', region: 'eu-west-1', alarmEmail: '  '}).length,"
        "check({stage: 'prod', region: 'eu-west-1', alarmEmail: 'ops@example.com'}).length,"
        "check({stage: 'dev', region: 'eu-west-1', alarmEmail: ''}).length]))"
    )
    done = subprocess.run(["node", "-e", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [4, 4, 0, 0]


# --- IAM -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["leastPrivilege", "labRole"])
def test_no_policy_allows_a_wildcard_action(packaged, mode):
    template = packaged[mode].template
    found = list(cfn.statements(template))
    assert found
    for where, statement in found:
        actions = cfn.as_list(statement.get("Action", []))
        assert "NotAction" not in statement, where
        if statement["Effect"] == "Allow":
            for action in actions:
                assert "*" not in action, f"{where}: wildcard action {action}"
        else:
            # The only Deny statements are the TLS-only guards (Deny <service>:* without TLS),
            # which restrict rather than grant.
            assert _is_tls_only_deny(statement), where


# Resources that cannot be narrowed further, with the reason:
#   the Glue Data Catalog ARN of this account/region: Glue authorizes every table call against
#   the catalog, the database and the table; the database/table ARNs next to it are this stage's.
UNAVOIDABLE_ACCOUNT_SCOPED = {"arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog"}


def test_role_statements_are_scoped_to_this_stack(template):
    roles = cfn.resources(template, "AWS::IAM::Role")
    assert set(roles) == {"IngestionRole", "StreamRole", "ReportRole", "CompactionRole"}
    stack_ids = set(template["Resources"])
    for role_id, role in roles.items():
        for policy in role["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                assert statement["Effect"] == "Allow"
                for res in cfn.as_list(statement["Resource"]):
                    assert res != "*", f"{role_id}/{statement['Sid']}"
                    if cfn.sub_text(res) in UNAVOIDABLE_ACCOUNT_SCOPED:
                        continue
                    refs = cfn.referenced_logical_ids(res) - {"AWS::Partition", "AWS::Region", "AWS::AccountId"}
                    assert refs, f"{role_id}/{statement['Sid']}: {res} names no resource of this stack"
                    assert refs <= stack_ids, f"{role_id}/{statement['Sid']}: {refs - stack_ids}"


def test_least_privilege_mode_gives_each_function_its_own_role(template):
    roles = {block: function(template, block)["Role"] for block in FUNCTIONS}
    assert roles == {
        "ingestion": {"Fn::GetAtt": ["IngestionRole", "Arn"]},
        "stream": {"Fn::GetAtt": ["StreamRole", "Arn"]},
        "report": {"Fn::GetAtt": ["ReportRole", "Arn"]},
        "compaction": {"Fn::GetAtt": ["CompactionRole", "Arn"]},
    }
    assert "IamRoleLambdaExecution" not in template["Resources"]
    # Each role writes only to its own function's log group.
    for block, role_id in (
        ("ingestion", "IngestionRole"),
        ("stream", "StreamRole"),
        ("report", "ReportRole"),
        ("compaction", "CompactionRole"),
    ):
        log_group = FUNCTIONS[block][0].replace("LambdaFunction", "LogGroup")
        (policy,) = cfn.resource(template, role_id)["Properties"]["Policies"]
        (logs,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] == "OwnLogGroup"]
        assert logs["Resource"] == [{"Fn::GetAtt": [log_group, "Arn"]}]


def test_lab_role_mode_creates_no_iam_resources(packaged):
    template = packaged["labRole"].template
    iam_types = {r["Type"] for r in template["Resources"].values() if r["Type"].startswith("AWS::IAM::")}
    assert iam_types == set()
    lab_role = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/LabRole"}
    for block in FUNCTIONS:
        assert function(template, block)["Role"] == lab_role


def test_both_modes_declare_the_same_non_iam_resources(packaged):
    def shape(template):
        return {
            k: v["Type"]
            for k, v in template["Resources"].items()
            if not v["Type"].startswith("AWS::IAM::") and v["Type"] != "AWS::Lambda::Version"
        }

    assert shape(packaged["leastPrivilege"].template) == shape(packaged["labRole"].template)


# --- outputs ---------------------------------------------------------------------------------


def test_outputs_name_everything_a_user_needs(template):
    outputs = template["Outputs"]
    expected = {
        "DataBucketName": {"Ref": "DataBucket"},
        "PurchasesTableName": {"Ref": "PurchasesTable"},
        "IngestQueueUrl": {"Ref": "IngestQueue"},
        "IngestDeadLetterQueueUrl": {"Ref": "IngestDeadLetterQueue"},
        "StreamFailureQueueUrl": {"Ref": "StreamFailureQueue"},
        "GlueDatabaseName": {"Ref": "GlueDatabase"},
        "AthenaWorkGroupName": {"Ref": "AthenaWorkGroup"},
        "AlarmTopicArn": {"Ref": "AlarmTopic"},
    }
    for key, value in expected.items():
        assert outputs[key]["Value"] == value, key
    assert outputs["GlueTableName"]["Value"] == dev_names().glue_table
    assert "HttpApiUrl" in outputs


# --- compaction ------------------------------------------------------------------------------


def test_compaction_runs_on_the_configured_schedule_without_retries(template):
    settings = config.function_settings("compaction")
    rules = [r["Properties"] for r in cfn.resources(template, "AWS::Events::Rule").values()]
    (rule,) = [r for r in rules if r["Targets"][0]["Arn"] == {"Fn::GetAtt": [FUNCTIONS["compaction"][0], "Arn"]}]
    assert rule["ScheduleExpression"] == settings["schedule"] and rule["State"] == "ENABLED"
    configs = cfn.resources(template, "AWS::Lambda::EventInvokeConfig").values()
    (invoke_config,) = [c for c in configs if c["Properties"]["FunctionName"] == {"Ref": FUNCTIONS["compaction"][0]}]
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 0


def test_compaction_stale_alarm_watches_the_merges_metric(template):
    (stale,) = [a for a in _alarms(template) if a.get("MetricName") == "CompactionMerges"]
    assert stale["Namespace"] == CFG["observability"]["metricsNamespace"]
    assert {d["Name"]: d["Value"] for d in stale["Dimensions"]} == {
        "function": config.function_settings("compaction")["name"],
        "service": CFG["service"],
    }
    assert stale["TreatMissingData"] == "breaching" and stale["ComparisonOperator"] == "LessThanThreshold"
    stale_hours = config.function_settings("compaction")["staleAfterHours"]
    assert stale["Period"] * stale["EvaluationPeriods"] == stale_hours * 3600


def test_compaction_role_writes_only_the_iceberg_table_and_its_state(template):
    (policy,) = cfn.resource(template, "CompactionRole")["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    prefixes = config.prefixes()
    writes = {
        sid: [cfn.sub_text(r) for r in cfn.as_list(s["Resource"])]
        for sid, s in statements.items()
        if any(a in ("s3:PutObject", "s3:DeleteObject") for a in cfn.as_list(s["Action"]))
    }
    assert writes == {
        "IcebergDataAndMetadata": [f"${{DataBucket.Arn}}/{prefixes['iceberg']}*"],
        "MaintenanceState": [f"${{DataBucket.Arn}}/{prefixes['compaction']}*"],
        "AthenaResults": [f"${{DataBucket.Arn}}/{prefixes['athenaResults']}*"],
    }
    glue_writes = statements["CreateAndCommitIcebergTable"]
    assert cfn.sub_text(cfn.as_list(glue_writes["Resource"])[-1]).endswith(f"/{CFG['names']['icebergTable']}")
