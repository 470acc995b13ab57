"""optibridge: runs Optimove campaigns on an execution platform and reports back exactly once."""

__version__ = "0.1.0"
