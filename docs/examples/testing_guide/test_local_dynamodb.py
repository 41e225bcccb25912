"""A local DynamoDB without the plugin: ``local_dynamodb()`` in a test of its own."""

from aiolease.testing import local_dynamodb


async def test_one_job_at_a_time() -> None:
    async with local_dynamodb() as env:
        manager = env.manager(default_ttl=5)
        async with manager.lease("report:nightly") as lease:
            assert lease.held
        assert await manager.get("report:nightly") is None
