"""The infrastructure snippets of docs/operations.md, checked by tools made for them.

cfn-lint checks the CloudFormation template, python-hcl2 parses the Terraform module and
a JSON schema checks the IAM policies. All of them must agree with the table that
``LeaseManager.create_table()`` (and so ``aiolease create-table``) makes: the key
attribute, its type, the TTL attribute, on-demand billing, and the lease user's actions.

Also the built site's API reference: the manager first, signatures wrapped, sentinel
defaults shown by what they mean. Run by ``nox -s docs``, which installs the docs group
and builds the site first; the tests sessions skip this file.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any, cast

# The docs group's tools: typed or not, and absent from the typing session's environment.
import cfnlint.api  # type: ignore[import-untyped, import-not-found, unused-ignore]
import cfnlint.decode  # type: ignore[import-untyped, import-not-found, unused-ignore]
import hcl2  # type: ignore[import-untyped, import-not-found, unused-ignore]
import jsonschema  # type: ignore[import-untyped, import-not-found, unused-ignore]
import pytest

from aiolease import LeaseManager

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "docs" / "infra"
IAM = ROOT / "docs" / "iam"

# The shape of an IAM identity-based policy document, as far as these files use it.
ACTION = {"type": "string", "pattern": r"^dynamodb:[A-Z][A-Za-z]+$"}
IAM_POLICY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["Version", "Statement"],
    "additionalProperties": False,
    "properties": {
        "Version": {"const": "2012-10-17"},
        "Id": {"type": "string"},
        "Statement": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["Effect", "Action", "Resource"],
                "additionalProperties": False,
                "properties": {
                    "Sid": {"type": "string", "pattern": "^[A-Za-z0-9]+$"},
                    "Effect": {"enum": ["Allow", "Deny"]},
                    "Action": {
                        "oneOf": [
                            ACTION,
                            {"type": "array", "items": ACTION, "minItems": 1, "uniqueItems": True},
                        ]
                    },
                    "Resource": {
                        "oneOf": [
                            {"type": "string", "pattern": "^arn:aws:dynamodb:"},
                            {
                                "type": "array",
                                "items": {"type": "string", "pattern": "^arn:aws:dynamodb:"},
                            },
                        ]
                    },
                    "Condition": {"type": "object"},
                },
            },
        },
    },
}


class RecordingClient:
    """Answers the table calls of ``create_table()`` as DynamoDB would, keeping the requests."""

    class meta:  # noqa: N801  (mirrors botocore's client.meta)
        class service_model:  # noqa: N801
            service_name = "dynamodb"

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, Any]] = {}

    async def create_table(self, **params: Any) -> dict[str, Any]:
        self.requests["CreateTable"] = params
        return {}

    async def describe_table(self, **params: Any) -> dict[str, Any]:
        created = self.requests["CreateTable"]
        return {
            "Table": {
                "TableName": params["TableName"],
                "TableStatus": "ACTIVE",
                "AttributeDefinitions": created["AttributeDefinitions"],
                "KeySchema": created["KeySchema"],
            }
        }

    async def describe_time_to_live(self, **_params: Any) -> dict[str, Any]:
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}

    async def update_time_to_live(self, **params: Any) -> dict[str, Any]:
        self.requests["UpdateTimeToLive"] = params
        return {}


async def test_create_table_makes_the_table_the_docs_describe() -> None:
    client = RecordingClient()
    assert await LeaseManager(cast("Any", client), "leases").create_table()
    assert table_of_the_library(client) == EXPECTED


EXPECTED = {
    "key": ("pk", "S"),
    "ttl": "ttl",
    "billing": "PAY_PER_REQUEST",
}


def table_of_the_library(client: RecordingClient) -> dict[str, Any]:
    create = client.requests["CreateTable"]
    (hash_key,) = create["KeySchema"]
    assert hash_key["KeyType"] == "HASH"
    types = {a["AttributeName"]: a["AttributeType"] for a in create["AttributeDefinitions"]}
    spec = client.requests["UpdateTimeToLive"]["TimeToLiveSpecification"]
    assert spec["Enabled"] is True
    return {
        "key": (hash_key["AttributeName"], types[hash_key["AttributeName"]]),
        "ttl": spec["AttributeName"],
        "billing": create["BillingMode"],
    }


# -- CloudFormation -------------------------------------------------------------------


def cloudformation() -> dict[str, Any]:
    """The template as cfn-lint reads it (short-form intrinsics as ``Ref``, ``Fn::GetAtt``)."""
    template, problems = cfnlint.decode.decode_str((INFRA / "table.cfn.yaml").read_text())
    assert problems == []
    assert template is not None
    return dict(template)


def test_cfn_lint_finds_nothing() -> None:
    matches = cfnlint.api.lint_file(INFRA / "table.cfn.yaml")
    assert [str(match) for match in matches] == []


def test_cfn_lint_would_find_a_mistake() -> None:
    broken = (INFRA / "table.cfn.yaml").read_text().replace("KeyType: HASH", "KeyType: PARTITION")
    assert cfnlint.api.lint(broken)


def test_the_cloudformation_table_matches_the_library() -> None:
    resources = cloudformation()["Resources"]
    table = resources["LeaseTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == "Retain"
    properties = table["Properties"]
    (hash_key,) = properties["KeySchema"]
    assert hash_key["KeyType"] == "HASH"
    types = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    ttl = properties["TimeToLiveSpecification"]
    assert ttl["Enabled"] is True
    assert {
        "key": (hash_key["AttributeName"], types[hash_key["AttributeName"]]),
        "ttl": ttl["AttributeName"],
        "billing": properties["BillingMode"],
    } == EXPECTED


def test_the_cloudformation_policy_is_the_lease_user_policy() -> None:
    policy = cloudformation()["Resources"]["LeaseUserPolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Resource"] == {"Fn::GetAtt": ["LeaseTable", "Arn"]}
    assert set(statement["Action"]) == iam_actions("lease-user.json")


# -- Terraform ------------------------------------------------------------------------


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals' quotes; drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(item) for item in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if not k.startswith("__")}
    return value


def terraform() -> dict[str, Any]:
    with (INFRA / "table.tf").open() as file:
        parsed: dict[str, Any] = unquote(hcl2.load(file))
    return parsed


def block(parsed: dict[str, Any], kind: str, type_: str, name: str) -> dict[str, Any]:
    found = [entry[type_][name] for entry in parsed[kind] if name in entry.get(type_, {})]
    assert len(found) == 1, f"{kind} {type_}.{name}"
    result: dict[str, Any] = found[0]
    return result


def test_the_terraform_table_matches_the_library() -> None:
    table = block(terraform(), "resource", "aws_dynamodb_table", "leases")
    (attribute,) = table["attribute"]
    assert attribute["name"] == table["hash_key"]
    assert "range_key" not in table
    (ttl,) = table["ttl"]
    assert ttl["enabled"] is True
    assert {
        "key": (table["hash_key"], attribute["type"]),
        "ttl": ttl["attribute_name"],
        "billing": table["billing_mode"],
    } == EXPECTED
    assert table["deletion_protection_enabled"] is True


def test_the_terraform_policy_is_the_lease_user_policy() -> None:
    parsed = terraform()
    document = block(parsed, "data", "aws_iam_policy_document", "lease_user")
    (statement,) = document["statement"]
    assert statement["resources"] == ["${aws_dynamodb_table.leases.arn}"]
    assert set(statement["actions"]) == iam_actions("lease-user.json")
    policy = block(parsed, "resource", "aws_iam_policy", "lease_user")
    assert policy["policy"] == "${data.aws_iam_policy_document.lease_user.json}"


# -- IAM ------------------------------------------------------------------------------


def iam_actions(name: str) -> set[str]:
    document = json.loads((IAM / name).read_text())
    return {action for statement in document["Statement"] for action in statement["Action"]}


@pytest.mark.parametrize("name", ["lease-user.json", "table-admin.json"])
def test_iam_policy_is_a_valid_policy_document(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(IAM_POLICY_SCHEMA)
    jsonschema.validate(json.loads((IAM / name).read_text()), IAM_POLICY_SCHEMA)


def test_the_schema_refuses_a_broken_policy() -> None:
    document = json.loads((IAM / "lease-user.json").read_text())
    document["Statement"][0]["Effect"] = "Permit"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, IAM_POLICY_SCHEMA)


# -- the built site (nox -s docs builds it into build/site first) --------------------------

SITE = ROOT / "build" / "site"


def reference_text(page: str) -> str:
    built = SITE / "reference" / page / "index.html"
    assert built.is_file(), f"{built} is missing: build the site with nox -s docs"
    text = re.sub(r"<[^>]+>", "", built.read_text())
    return html.unescape(text)


def test_the_api_reference_starts_with_the_manager_and_wraps_its_signatures() -> None:
    text = reference_text("aiolease")
    first = [text.find(f"\n{name}(") for name in ("LeaseManager", "LeaseInfo")]
    assert 0 <= first[0] < first[1], "LeaseManager comes first on its page"
    # Signatures are formatted one parameter per line, within the column.
    signature = text[first[0] : text.index(")", text.index("hooks:", first[0]))]
    assert "\n    client: DynamoDBClient,\n" in signature
    assert max(len(line) for line in signature.splitlines()) <= 80


def test_the_internal_unset_default_reads_as_unchanged() -> None:
    text = reference_text("aiolease")
    assert "data: Any = unchanged" in text
    assert "= UNSET" not in text
