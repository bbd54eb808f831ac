"""Build hook (the rest of the build is in pyproject.toml): a built wheel carries the
top-level ``templates/``, ``static/`` and ``migrations/`` inside the package, as
``storefront/templates`` and so on, where ``create_app`` looks first. The repository
keeps them at the top (the design card's layout); an editable install reads them there.
It also compiles the translations (``storefront/translations/*/LC_MESSAGES/messages.po``)
into the ``.mo`` files Flask-Babel reads: they are build output, never committed.
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
        compile_catalogs(ROOT / "storefront" / "translations", Path(self.build_lib) / "storefront" / "translations")


def compile_catalogs(source: Path, target: Path) -> None:
    """Each ``<lang>/LC_MESSAGES/messages.po`` under ``source`` as a ``.mo`` under ``target``
    (what ``pybabel compile -d storefront/translations`` does for a checkout)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po in source.glob("*/LC_MESSAGES/messages.po"):
        mo = target / po.relative_to(source).with_suffix(".mo")
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parts[-3])
        with mo.open("wb") as f:
            write_mo(f, catalog)


setup(cmdclass={"build_py": BuildPyWithBundledFolders})
