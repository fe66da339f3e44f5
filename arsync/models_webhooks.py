"""Webhooks: received events (for de-duplication) and OAuth connect state.

Tables here are registered by the import at the bottom of :mod:`arsync.models`.
"""

from __future__ import annotations
