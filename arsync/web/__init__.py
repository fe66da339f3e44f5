"""The web app (FastAPI, server-rendered Jinja2 pages): accounts, connect flows, webhooks,
the dashboard and the payer's self-service page. ``arsync web`` serves :func:`app.create_app`."""
