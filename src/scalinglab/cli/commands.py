"""Imports every command module so that each registers itself on the app."""

from scalinglab.cli import count  # noqa: F401
from scalinglab.cli import corpus  # noqa: F401
from scalinglab.cli import sweep  # noqa: F401
from scalinglab.cli import runs  # noqa: F401
from scalinglab.cli import fit  # noqa: F401
from scalinglab.cli import plan  # noqa: F401
from scalinglab.cli import report  # noqa: F401
from scalinglab.cli import reproduce  # noqa: F401
from scalinglab.cli import train  # noqa: F401
from scalinglab.cli import bench  # noqa: F401
