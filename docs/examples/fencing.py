"""A fenced write on DynamoDB: the resource refuses a holder that has fallen behind.

Runs against an embedded DynamoDB: ``python docs/examples/fencing.py`` (needs
``aiolease[testing]``).
"""

from typing import TYPE_CHECKING

import anyio

from aiolease import Lease
from aiolease.testing import local_dynamodb

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


async def write_report(client: "DynamoDBClient", lease: Lease, text: str) -> None:
    """Write the report unless a holder with a higher fence already wrote it."""
    # --8<-- [start:fenced-write]
    await client.update_item(
        TableName="reports",
        Key={"id": {"S": "nightly"}},
        UpdateExpression="SET #body = :body, #fence = :fence",
        ConditionExpression="attribute_not_exists(#fence) OR #fence <= :fence",
        ExpressionAttributeNames={"#body": "body", "#fence": "fence"},
        ExpressionAttributeValues={
            ":body": {"S": text},
            ":fence": {"N": str(lease.fence)},
        },
    )  # ConditionalCheckFailedException: a newer holder exists; stop.
    # --8<-- [end:fenced-write]


async def main() -> None:
    """A holder loses its lease without noticing; its late write is refused."""
    async with local_dynamodb() as env:
        client = env.client
        await client.create_table(
            TableName="reports",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        a, b = env.manager(owner="worker-a"), env.manager(owner="worker-b")
        stale = await a.acquire("report:nightly")  # then worker-a stalls
        await b.break_lease("report:nightly")  # an operator frees the key...
        fresh = await b.acquire("report:nightly")  # ...and worker-b takes it
        await write_report(client, fresh, "by worker-b")
        print(f"worker-b wrote with fence {fresh.fence}")
        try:
            await write_report(client, stale, "by worker-a")
        except client.exceptions.ConditionalCheckFailedException:
            print(f"worker-a's write with fence {stale.fence} was refused")
        item = await client.get_item(TableName="reports", Key={"id": {"S": "nightly"}})
        print(f"stored: {item['Item']['body']['S']}")


anyio.run(main)
