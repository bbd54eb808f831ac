"""A built wheel is deployable on its own: it carries the templates, static files and
migrations (the top-level folders, and any inside the package), and installed outside
the checkout it migrates a fresh SQLite database, seeds the demo and serves the pages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

SOURCES = ("pyproject.toml", "setup.py", "README.md")
FOLDERS = ("storefront", "templates", "static", "migrations")
# *.mo: a compiled catalog in the checkout must not stand in for the one the build compiles.
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo")


def _run(*args: str, cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]


def _package_data(project_root: Path) -> list[str]:
    """What the wheel must carry besides modules: the top-level folders under
    storefront/, and every templates/ or static/ folder inside the package."""
    wanted = [f"storefront/{p.relative_to(project_root)}" for name in FOLDERS[1:] for p in _files(project_root / name)]
    for folder in (project_root / "storefront").rglob("*"):
        if folder.is_dir() and folder.name in ("templates", "static"):
            wanted += [p.relative_to(project_root).as_posix() for p in _files(folder)]
    return wanted


def test_the_wheel_carries_what_it_needs_and_runs_outside_the_checkout(tmp_path, project_root):
    # Build from a copy, so the checkout gets no build/ or egg-info, and only these files count.
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        shutil.copy2(project_root / name, src / name)
    for name in FOLDERS:
        shutil.copytree(project_root / name, src / name, ignore=SKIP)
    dist = tmp_path / "dist"
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(src), cwd=tmp_path)
    (wheel,) = dist.glob("storefront-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in _package_data(project_root) if name not in names]
    assert missing == [], missing
    assert "storefront/migrations/versions/0004_money_minor_units.py" in names
    # The French catalog, compiled by the build (the checkout commits only the .po).
    assert "storefront/translations/fr/LC_MESSAGES/messages.mo" in names

    site = tmp_path / "site"
    _run(*pip, "install", "--no-deps", "--no-index", "--no-compile", "--target", str(site), str(wheel), cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
        "SECRET_KEY": "wheel-test",
        "MAIL_OUTBOX": str(tmp_path / "outbox"),
        # A production-like configuration; nothing here calls Stripe.
        "STRIPE_SECRET_KEY": "sk_test_wheel",
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "STRIPE_WEBHOOK_SECRET": "whsec_wheel",
    }
    flask = (sys.executable, "-m", "flask", "--app", "storefront")
    _run(*flask, "db", "upgrade", cwd=elsewhere, env=env)
    assert "Demo data created." in _run(*flask, "seed-demo", cwd=elsewhere, env=env)
    script = textwrap.dedent(
        """
        import storefront
        from storefront import create_app

        app = create_app()
        client = app.test_client()
        events = client.get("/")
        css = client.get("/static/css/app.css")
        print(storefront.__file__, app.template_folder, app.static_folder, sep="\\n")
        french = client.get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
        print(events.status_code, css.status_code)
        print('lang="fr"' in french and "Prochains événements" in french)
        print(events.get_data(as_text=True))
        """
    )
    out = _run(sys.executable, "-c", script, cwd=elsewhere, env=env).splitlines()
    module, templates, static, statuses, french = out[:5]
    for path in (module, templates, static):
        assert Path(path).is_relative_to(site / "storefront"), (path, site)
    assert statuses == "200 200"
    assert french == "True"  # the installed wheel speaks French: its catalog was compiled
    page = "\n".join(out[5:])
    assert "Tokyo Design Summit" in page and "¥12,000" in page
