"""report stage of scalinglab (see docs/explanations/architecture.md)."""
