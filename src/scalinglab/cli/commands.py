"""Imports every command module so that each registers itself on the app."""

from scalinglab.cli import (
    bench,  # noqa: F401
    corpus,  # noqa: F401
    count,  # noqa: F401
    datasets,  # noqa: F401
    fit,  # noqa: F401
    import_runs,  # noqa: F401
    plan,  # noqa: F401
    report,  # noqa: F401
    reproduce,  # noqa: F401
    runs,  # noqa: F401
    sweep,  # noqa: F401
    train,  # noqa: F401
)
