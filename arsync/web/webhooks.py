"""Webhook receivers (QuickBooks, Xero): verify, acknowledge fast, de-duplicate, queue a refresh."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
