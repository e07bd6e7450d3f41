"""Packaging glue that pyproject.toml cannot express: `configs/` ships inside the wheel.

`configs/` stays the one source of the YAML; setuptools maps it to the `lossbench.configs` package
directory, so a wheel (and `pip install .`) carries every option, while editable installs and a
checkout read `configs/` in place.
"""

from pathlib import Path

from setuptools import find_namespace_packages, find_packages, setup

CONFIGS = sorted(
    str(p.relative_to("configs")) for p in Path("configs").rglob("*.yaml") if "local" not in p.parts
)
setup(
    packages=[*find_packages("src"), *find_namespace_packages("src", include=["hydra_plugins.*"]), "lossbench.configs"],
    package_dir={"": "src", "lossbench.configs": "configs"},
    package_data={"lossbench.configs": CONFIGS, "lossbench.report": ["targets/*.yaml"]},
)
