"""The testing guide's examples: a small pytest project using aiolease.testing."""
