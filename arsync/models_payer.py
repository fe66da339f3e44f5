"""Requests made by payers on their self-service page.

Tables here are registered by the import at the bottom of :mod:`arsync.models`.
"""

from __future__ import annotations
