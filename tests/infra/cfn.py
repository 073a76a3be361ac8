"""Small readers over a packaged CloudFormation template (plain dicts), shared by the infra tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

Template = dict[str, Any]

_POLICY_TYPES = (
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
)
_SUB_REFERENCE = re.compile(r"\$\{([^}!]+)\}")


def resources(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of one type."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def resource(template: Template, logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_documents(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, document) for every policy document: role inline policies, managed policies and
    resource policies (bucket, queue, topic)."""
    for logical_id, res in template["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                yield f"{logical_id}/{policy['PolicyName']}", policy["PolicyDocument"]
        elif res["Type"] in _POLICY_TYPES:
            yield logical_id, props["PolicyDocument"]


def statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, document in policy_documents(template):
        for statement in as_list(document["Statement"]):
            yield where, statement


def referenced_logical_ids(value: Any) -> set[str]:
    """Logical ids a value refers to through Ref, Fn::GetAtt or Fn::Sub ${Id} / ${Id.Attr}."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                for name in _SUB_REFERENCE.findall(text):
                    found.add(name.split(".")[0])
            else:
                found |= referenced_logical_ids(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= referenced_logical_ids(inner)
    return found


def sub_text(value: Any) -> str | None:
    """The string of an Fn::Sub (short or long form), else None."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        inner = value["Fn::Sub"]
        return inner if isinstance(inner, str) else inner[0]
    return None
