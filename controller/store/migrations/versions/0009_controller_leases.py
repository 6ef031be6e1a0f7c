"""controller leases for replica membership and singleton tasks

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 10:58:06.464345
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('controller_leases',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_controller_leases'))
    )
    with op.batch_alter_table('controller_leases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_controller_leases_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('controller_leases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_controller_leases_expires_at'))

    op.drop_table('controller_leases')
