"""The payer's self-service page, reached by a signed, expiring link in every message."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
