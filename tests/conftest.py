"""Shared fixtures: real SQLite and PostgreSQL databases, settings, sample payloads."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from arsync.config import Settings
from arsync.db import make_engine, upgrade

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = FIXTURES / "samples"
POSTGRES_URL = os.environ.get("ARSYNC_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def sample(name: str) -> Any:
    """A provider sample payload from tests/fixtures/samples (sources in its README)."""
    return json.loads((SAMPLES / name).read_text())


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'arsync.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _postgres_available() -> str | None:
    try:
        engine = make_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to reach the server means "absent"
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.__class__.__name__}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private schema in the local PostgreSQL; skipped when absent, but never in CI."""
    reason = _postgres_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests)")
        pytest.skip(reason)
    schema = f"arsync_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    schema = postgres_url.rsplit("search_path%3D", 1)[1]
    with engine.begin() as conn:  # each test starts from an empty schema, whatever tables exist
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Both real databases, one after the other."""
    return request.getfixturevalue(f"{request.param}_engine")  # type: ignore[no-any-return]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, home=tmp_path / "home", secret_key="k" * 32)  # type: ignore[call-arg]
