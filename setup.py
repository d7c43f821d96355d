"""A shim for tools that still run setup.py; the package metadata is in pyproject.toml."""

import setuptools

setuptools.setup()
