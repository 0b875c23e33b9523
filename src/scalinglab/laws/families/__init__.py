"""The law families, one module each; every module here is imported by the registry (framework/registry.py),
so a class that registers itself in a new module here is a new law."""
