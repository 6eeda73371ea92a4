"""Set-up shim: the project's metadata lives in ``pyproject.toml``."""

from setuptools import setup

setup()
