"""Enables aiolease's pytest plugin for this project's tests."""

pytest_plugins = ["aiolease.testing.pytest_plugin"]
