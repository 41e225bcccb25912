"""The user's conftest: the plugin gives a local DynamoDB and a manager as fixtures."""

pytest_plugins = ["aiolease.testing.pytest_plugin"]
