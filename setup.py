"""The package list, which pyproject.toml cannot express once a folder outside mdtflag/ maps into it.

``rules/`` stays at the top of the source tree (rule authors, ``rules check`` and the tests use it
there) and is installed as the data-only package ``mdtflag/default_rules`` (``package-dir`` and
``package-data`` in pyproject.toml), so ``mdtflag evaluate`` works in any folder after
``pip install .`` or from a wheel. Every other setting is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["mdtflag", "mdtflag.*"]), "mdtflag.default_rules"])
