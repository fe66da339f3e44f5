"""webhooks: received events (de-duplication) and targeted refreshes; OAuth connect state

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import arsync.dbtypes


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oauth_states',
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('browser_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('redirect_uri', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('code_verifier_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('reconnect_connection_id', sa.Integer(), nullable=True),
    sa.Column('created_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('state')
    )
    op.create_table('webhook_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=True),
    sa.Column('entity', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('entity_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('operation', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('occurred_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('received_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claim_owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('claim_until', arsync.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('processed_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider', 'dedupe_key')
    )
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_events_due', ['status', 'received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_events_due')

    op.drop_table('webhook_events')
    op.drop_table('oauth_states')
