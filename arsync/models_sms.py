"""SMS delivery state: opt-outs (STOP/START replies) per number.

Tables here are registered by the import at the bottom of :mod:`arsync.models`.
"""

from __future__ import annotations
