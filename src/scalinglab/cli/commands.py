"""Imports every command module so that each registers itself on the app."""

from scalinglab.cli import count  # noqa: F401
