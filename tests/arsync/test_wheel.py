"""`pip install .` (not only editable) must carry the migrations, templates, default policy and
the web app's pages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_migrations_templates_and_policy(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                    "--disable-pip-version-check", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("arsync-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = {n for n in names if n.startswith("arsync/_migrations/versions/")}
    on_disk = {f"arsync/_migrations/versions/{p.name}"
               for p in (ROOT / "alembic" / "versions").glob("*.py")}
    assert on_disk and on_disk <= migrations
    assert "arsync/_migrations/env.py" in names
    templates = {n for n in names if n.startswith("arsync/_templates/")}
    assert {f"arsync/_templates/{p.relative_to(ROOT / 'templates')}"
            for p in (ROOT / "templates").rglob("*.j2")} <= templates
    assert "rules/default_policy.yaml" in names
    # The web app's pages and static files (served by the app itself, no CDN).
    web = ROOT / "arsync" / "web"
    assert {p.relative_to(ROOT).as_posix() for p in (web / "templates").glob("*.html")} | {
        p.relative_to(ROOT).as_posix() for p in (web / "static").iterdir()} <= names
    assert "connectors/quickbooks/connector.py" in names
    assert not any(n.startswith(("tests/", "alembic/")) for n in names)
