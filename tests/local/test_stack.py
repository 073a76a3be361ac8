"""local/stack.py: the packaged template deployed into moto's CloudFormation, and the one list of what moto does
not create (GAPS). These tests keep that list true: they fail when moto starts supporting an entry (remove it) and
when the template gains a resource type that neither moto nor the list covers (add one)."""

from __future__ import annotations

import json
import shutil
from urllib.parse import unquote_plus

import pytest
from moto.cloudformation.parsing import get_model_map

import pipeline_config as config
from local import stack as local_stack
from local import template as local_template

pytestmark = pytest.mark.integration

TYPE_GAPS = {g.resource_type: g for g in local_stack.GAPS if g.prop is None}
PROPERTY_GAPS = [g for g in local_stack.GAPS if g.prop is not None]


def declared_types(template) -> set[str]:
    return {r["Type"] for r in template["Resources"].values()}


def test_every_resource_type_of_the_template_is_created_by_moto_or_listed(stack):
    supported = set(get_model_map())
    uncovered = declared_types(stack.template) - supported - set(TYPE_GAPS) - set(local_stack.WITHHELD)
    assert not uncovered, (
        f"the template declares {sorted(uncovered)}, which moto's CloudFormation skips and local/stack.py GAPS "
        "does not list: add a Gap (apply it from the template's properties, or say why it is not needed locally)"
    )


def test_every_skipped_type_in_the_list_is_still_skipped_by_moto():
    now_supported = sorted(set(TYPE_GAPS) & set(get_model_map()))
    assert not now_supported, f"moto's CloudFormation now creates {now_supported}: remove their Gap entries"


def test_every_entry_is_needed_and_says_why(stack):
    types = declared_types(stack.template)
    for gap in local_stack.GAPS:
        assert gap.why.strip(), gap
        assert gap.resource_type in types, f"{gap.resource_type}: not in the template any more, remove its Gap"
        if gap.prop is not None:
            assert gap.probe is not None, f"{gap.resource_type}.{gap.prop}: a property gap needs a probe"
            assert any(
                gap.prop in r.get("Properties", {})
                for r in stack.template["Resources"].values()
                if r["Type"] == gap.resource_type
            ), f"{gap.resource_type}.{gap.prop}: no resource declares it any more, remove its Gap"
        if gap.apply is None:
            assert "not applied" in gap.why, f"{gap}: say why it is not applied locally"


def test_every_dropped_property_in_the_list_is_still_dropped_by_moto(aws):
    """Deploy the template WITHOUT filling the gaps: each listed property must still be missing."""
    template = local_template.packaged_template("test")
    deployment = local_stack.deploy_template(aws.clients, template, "compras-raw", aws.region)
    for gap in PROPERTY_GAPS:
        for logical_id in deployment.of_type(gap.resource_type):
            if gap.prop not in deployment.resource(logical_id).get("Properties", {}):
                continue
            assert not gap.probe(deployment, logical_id), (
                f"moto's CloudFormation now creates {logical_id}.{gap.prop}: remove its Gap from local/stack.py"
            )


def test_applied_property_gaps_are_present_after_create_stack(stack, aws):
    deployment = local_stack.Deployment(
        template=stack.template,
        physical={
            k: v
            for k, v in (
                (s["LogicalResourceId"], s.get("PhysicalResourceId"))
                for s in stack.aws.client("cloudformation").list_stack_resources(StackName=stack.stack_name)[
                    "StackResourceSummaries"
                ]
            )
            if v
        },
        account_id=stack.names.account_id,
        region=stack.names.region,
        stack_name=stack.stack_name,
        aws=stack.aws,
    )
    checked = 0
    for gap in PROPERTY_GAPS:
        if gap.apply is None:
            continue
        for logical_id in deployment.of_type(gap.resource_type):
            if gap.prop in deployment.resource(logical_id).get("Properties", {}):
                assert gap.probe(deployment, logical_id), f"{logical_id}.{gap.prop} was not applied"
                checked += 1
    assert checked >= 6


def test_bucket_notification_is_the_declared_one(stack):
    declared = stack.template["Resources"]["DataBucket"]["Properties"]["NotificationConfiguration"]
    actual = stack.aws.client("s3").get_bucket_notification_configuration(Bucket=stack.names.bucket)
    (d_queue,) = declared["QueueConfigurations"]
    (a_queue,) = actual["QueueConfigurations"]
    assert a_queue["QueueArn"] == stack.ingest_queue_arn
    assert a_queue["Events"] == [d_queue["Event"]]
    rules = {r["Name"].lower(): r["Value"] for r in a_queue["Filter"]["Key"]["FilterRules"]}
    assert rules == {r["Name"]: r["Value"] for r in d_queue["Filter"]["S3Key"]["Rules"]}


def test_an_upload_notifies_the_ingest_queue_and_other_keys_do_not(stack):
    sqs = stack.aws.client("sqs")
    sqs.purge_queue(QueueUrl=stack.ingest_queue_url)  # the s3:TestEvent of the notification set-up
    s3 = stack.aws.client("s3")
    s3.put_object(Bucket=stack.names.bucket, Key="compras/x.json", Body=b"{}")
    s3.put_object(Bucket=stack.names.bucket, Key="uploads/t.csv", Body=b"a,b\n")
    messages = sqs.receive_message(QueueUrl=stack.ingest_queue_url, MaxNumberOfMessages=10).get("Messages", [])
    keys = [unquote_plus(r["s3"]["object"]["key"]) for m in messages for r in json.loads(m["Body"])["Records"]]
    assert keys == ["uploads/t.csv"]


def test_glue_table_queue_policy_and_workgroup_are_the_declared_ones(stack):
    resources = stack.template["Resources"]
    declared = resources["GlueComprasTable"]["Properties"]["TableInput"]
    actual = stack.aws.client("glue").get_table(DatabaseName=stack.names.glue_database, Name=stack.names.glue_table)[
        "Table"
    ]
    assert (actual["Name"], actual["TableType"], actual["Parameters"]) == (
        declared["Name"],
        declared["TableType"],
        declared["Parameters"],
    )
    assert actual["PartitionKeys"] == declared["PartitionKeys"]
    assert actual["StorageDescriptor"]["Columns"] == declared["StorageDescriptor"]["Columns"]
    assert actual["StorageDescriptor"]["SerdeInfo"] == declared["StorageDescriptor"]["SerdeInfo"]
    assert actual["StorageDescriptor"]["Location"] == f"s3://{stack.names.bucket}/compras/"

    policy = stack.aws.client("sqs").get_queue_attributes(QueueUrl=stack.ingest_queue_url, AttributeNames=["Policy"])
    statements = json.loads(policy["Attributes"]["Policy"])["Statement"]
    declared_statements = resources["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in statements] == [s["Sid"] for s in declared_statements]
    assert statements[0]["Resource"] == stack.ingest_queue_arn
    assert statements[0]["Condition"]["ArnEquals"]["aws:SourceArn"] == f"arn:aws:s3:::{stack.names.bucket}"
    assert statements[0]["Condition"]["StringEquals"]["aws:SourceAccount"] == stack.names.account_id

    workgroup = stack.aws.client("athena").get_work_group(WorkGroup=stack.names.athena_workgroup)["WorkGroup"]
    declared_wg = resources["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert workgroup["Configuration"]["ResultConfiguration"]["OutputLocation"] == (
        f"s3://{stack.names.bucket}/athena-results/"
    )
    assert workgroup["Configuration"]["BytesScannedCutoffPerQuery"] == declared_wg["BytesScannedCutoffPerQuery"]


def test_functions_run_with_the_deployed_environment(stack):
    for function in stack.functions.values():
        declared = stack.template["Resources"][function.logical_id]["Properties"]
        expected = {**declared["Environment"]["Variables"], "BUCKET_NAME": stack.names.bucket}
        assert dict(function.environment) == {k: str(v) for k, v in expected.items()}
        assert (function.timeout_seconds, function.memory_mb) == (declared["Timeout"], declared["MemorySize"])
        assert function.name == declared["FunctionName"]
    assert set(stack.functions) == {
        "ingestarTickets",
        "actualizarComprasStream",
        "generarReporteCompras",
        "compactarCompras",
    }
    # The local maintenance (LocalPipeline.compact) runs with the deployed compactarCompras environment.
    compaction_env = stack.lambda_environment("compactarCompras")
    assert {k: compaction_env[k] for k in config.function_environment("compaction")} == config.function_environment(
        "compaction"
    )


def test_event_sources_are_the_template_mappings_resolved(stack):
    declared = {
        k: r["Properties"]
        for k, r in stack.template["Resources"].items()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    assert {m.logical_id for m in stack.event_sources} == set(declared)
    ingestion = stack.event_source("ingestarTickets")
    assert ingestion.source_arn == stack.ingest_queue_arn
    assert ingestion.batch_size == declared[ingestion.logical_id]["BatchSize"]
    assert ingestion.maximum_concurrency == declared[ingestion.logical_id]["ScalingConfig"]["MaximumConcurrency"]
    assert ingestion.report_batch_item_failures
    stream = stack.event_source("actualizarComprasStream")
    props = declared[stream.logical_id]
    assert stream.source_arn == stack.table_stream_arn
    assert stream.on_failure_arn == stack.stream_failure_queue_arn
    assert (stream.batch_size, stream.starting_position) == (props["BatchSize"], props["StartingPosition"])
    assert stream.bisect_batch_on_function_error is props["BisectBatchOnFunctionError"]
    assert stream.maximum_retry_attempts == props["MaximumRetryAttempts"]
    assert stream.maximum_record_age_seconds == props["MaximumRecordAgeInSeconds"]
    assert stream.maximum_batching_window_seconds == props["MaximumBatchingWindowInSeconds"]
    # Withheld from moto: it would run the function in Docker and drain the stream.
    assert not stack.aws.client("lambda").list_event_source_mappings()["EventSourceMappings"]


# --- the packaged-template cache ----------------------------------------------------------------------------------


def copy_inputs(destination):
    root = local_template.ROOT
    for name in (*local_template.INFRA_INPUTS, "athena-queries.sql", "requirements.txt"):
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, destination / name)
    for directory in (*local_template.INFRA_DIRS, "lambdas"):
        shutil.copytree(root / directory, destination / directory, ignore=shutil.ignore_patterns("__pycache__"))


def test_the_digest_covers_the_template_inputs_and_nothing_else(tmp_path):
    copy_inputs(tmp_path)
    digest = local_template.inputs_digest("local", root=tmp_path)
    (tmp_path / "README.md").write_text("not an input\n")
    assert local_template.inputs_digest("local", root=tmp_path) == digest
    assert local_template.inputs_digest("test", root=tmp_path) != digest
    assert local_template.inputs_digest("local", {"iamMode": "labRole"}, root=tmp_path) != digest
    for changed in ("config/pipeline.yml", "serverless.yml", "lambdas/stream/handler.py", "package-lock.json"):
        path = tmp_path / changed
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert local_template.inputs_digest("local", root=tmp_path) != digest, changed
        path.write_bytes(original)
    assert local_template.inputs_digest("local", root=tmp_path) == digest


def test_a_cached_template_is_used_without_packaging(tmp_path, monkeypatch):
    digest = local_template.inputs_digest("cached")
    entry = tmp_path / f"cached-{digest[:16]}"
    entry.mkdir()
    (entry / local_template.TEMPLATE_FILE).write_text('{"Resources": {}}')

    def no_packaging(*args, **kwargs):
        raise AssertionError("packaged again although the inputs did not change")

    monkeypatch.setattr(local_template, "run_package", no_packaging)
    assert local_template.packaged_template("cached", cache_dir=tmp_path) == {"Resources": {}}
