"""the payer's self-service page: requests from payers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import arsync.dbtypes


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payer_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('customer_external_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('invoice_ids_json', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('details_json', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('submission_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('handled_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('submission_key')
    )
    with op.batch_alter_table('payer_requests', schema=None) as batch_op:
        batch_op.create_index('ix_payer_requests_customer', ['connection_id', 'customer_external_id'], unique=False)

    op.create_table('payer_opt_outs',
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('customer_external_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('created_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], ),
    sa.PrimaryKeyConstraint('connection_id', 'customer_external_id', 'channel')
    )


def downgrade() -> None:
    op.drop_table('payer_opt_outs')
    with op.batch_alter_table('payer_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_payer_requests_customer')

    op.drop_table('payer_requests')
