"""scalinglab: the science of neural scaling laws, end to end (Kaplan et al., 2020)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scalinglab")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
