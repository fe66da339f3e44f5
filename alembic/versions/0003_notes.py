"""the durable write-back queue (notes on invoices in QuickBooks and Xero)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import arsync.dbtypes


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('note_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('invoice_external_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('source_type', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('event_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('lease_until', arsync.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('written_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('provider_ref', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('created_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('note_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_note_jobs_connection', ['connection_id', 'status'], unique=False)
        batch_op.create_index('ix_note_jobs_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_note_jobs_source', ['source_type', 'source_id', 'event'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('note_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_note_jobs_source')
        batch_op.drop_index('ix_note_jobs_due')
        batch_op.drop_index('ix_note_jobs_connection')

    op.drop_table('note_jobs')
