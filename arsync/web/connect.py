"""The OAuth connect flows (QuickBooks, Xero): authorize, callback, disconnect, launch."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
