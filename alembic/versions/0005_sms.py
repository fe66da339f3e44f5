"""SMS: opt-outs and numbers

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import arsync.dbtypes


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sms_opt_outs',
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('opted_out_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('opted_in_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('updated_at', arsync.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], ),
    sa.PrimaryKeyConstraint('connection_id', 'number')
    )


def downgrade() -> None:
    op.drop_table('sms_opt_outs')
