"""Where the packaged data lives: in a wheel under ``arsync/_*``, in a checkout at the top level."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _find(packaged: str, checkout: str) -> Path:
    inside = _PKG / packaged
    return inside if inside.is_dir() else _PKG.parent / checkout


def migrations_dir() -> Path:
    return _find("_migrations", "alembic")


def templates_dir() -> Path:
    return _find("_templates", "templates")
