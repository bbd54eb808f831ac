"""Build hook (the rest of the build is in pyproject.toml): a built wheel carries the
top-level ``templates/``, ``static/`` and ``migrations/`` inside the package, as
``storefront/templates`` and so on, where ``create_app`` looks first. The repository
keeps them at the top (the design card's layout); an editable install reads them there.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("templates", "static", "migrations")


class BuildPyWithBundledFolders(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in BUNDLED:
            target = Path(self.build_lib) / "storefront" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithBundledFolders})
