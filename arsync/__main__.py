"""``python -m arsync`` is the ``arsync`` command."""

from arsync.cli import app

app()
