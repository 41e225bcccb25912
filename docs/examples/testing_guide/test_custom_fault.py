"""A fault of one's own: another writer gets in between a write and its lost answer."""

from collections.abc import Awaitable, Callable
from typing import Any

from botocore.exceptions import ReadTimeoutError

from aiolease.testing import Fault, FaultContext, FaultyClient, LocalDynamoDB, Perform


# --8<-- [start:fault]
class DropThenInterfere(Fault):
    name = "drop_then_interfere"

    def __init__(self, interfere: Callable[[], Awaitable[None]]) -> None:
        self.interfere = interfere

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        await perform()
        await self.interfere()
        ctx.call.outcome = "dropped:ok"
        raise ReadTimeoutError(endpoint_url=ctx.endpoint_url)
        # --8<-- [end:fault]


async def test_a_break_between_the_grant_and_its_answer(
    aiolease_dynamodb: LocalDynamoDB,
) -> None:
    env = aiolease_dynamodb
    client = FaultyClient(env.client)
    operator = env.manager()

    async def break_it() -> None:
        await operator.break_lease("job:9")

    client.plan("update_item", DropThenInterfere(break_it))  # the acquire's write
    manager = env.manager(
        client=client, default_ttl=2, poll_interval=0.05, backoff=0.05
    )
    lease = await manager.acquire("job:9", timeout=2)
    assert lease.held
    assert client.calls_of("update_item")[0].outcome == "dropped:ok"
    await manager.release(lease)
