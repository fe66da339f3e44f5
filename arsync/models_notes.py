"""The write-back queue: notes waiting to be written onto invoices in the books.

Tables here are registered by the import at the bottom of :mod:`arsync.models`.
"""

from __future__ import annotations
