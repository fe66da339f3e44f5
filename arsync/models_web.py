"""Web accounts: organisations, users, memberships and sessions.

Tables here are registered by the import at the bottom of :mod:`arsync.models`.
"""

from __future__ import annotations
