"""Maps the repository's top-level folders onto the ``edgetrack`` namespace.

``models/`` -> ``edgetrack.models`` and ``converters/`` -> ``edgetrack.converters``: the training side lives in
its own folders (easy to see, never imported by the runtime) without installing generic top-level names such as
``models`` into site-packages. Everything else is declared in pyproject.toml.
"""
from setuptools import find_packages, setup

FOLDERS = {"edgetrack": "edgetrack", "edgetrack.models": "models", "edgetrack.converters": "converters"}

packages, package_dir = [], {}
for name, folder in FOLDERS.items():
    package_dir[name] = folder
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)
