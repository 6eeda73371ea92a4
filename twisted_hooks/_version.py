"""The version of twisted_hooks."""

__version__ = "0.1.0.dev0"
