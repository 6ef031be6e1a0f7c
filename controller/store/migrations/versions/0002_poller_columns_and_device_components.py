"""poller columns and device components

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 08:21:24.701399
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('device_components',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_components_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_components')),
    sa.UniqueConstraint('device_id', 'kind', 'index', name=op.f('uq_device_components_device_id'))
    )
    with op.batch_alter_table('device_components', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_components_device_id'), ['device_id'], unique=False)

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('poll_profile', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('credential_ref', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('firmware', sa.String(length=120), nullable=True))
        batch_op.create_index(batch_op.f('ix_devices_parent_id'), ['parent_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_devices_parent_id_devices'), 'devices', ['parent_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_devices_parent_id_devices'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_devices_parent_id'))
        batch_op.drop_column('firmware')
        batch_op.drop_column('parent_id')
        batch_op.drop_column('credential_ref')
        batch_op.drop_column('poll_profile')

    with op.batch_alter_table('device_components', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_components_device_id'))

    op.drop_table('device_components')
