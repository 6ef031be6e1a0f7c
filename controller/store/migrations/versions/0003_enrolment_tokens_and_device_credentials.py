"""enrolment tokens and device credentials

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 08:27:32.257940
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('enrolment_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('max_uses', sa.Integer(), nullable=False),
    sa.Column('uses', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_enrolment_tokens_school_id_schools')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrolment_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_enrolment_tokens_token_hash'))
    )
    with op.batch_alter_table('enrolment_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrolment_tokens_school_id'), ['school_id'], unique=False)

    op.create_table('device_credentials',
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=140), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_credentials_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['token_id'], ['enrolment_tokens.id'], name=op.f('fk_device_credentials_token_id_enrolment_tokens'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_device_credentials')),
    sa.UniqueConstraint('username', name=op.f('uq_device_credentials_username'))
    )


def downgrade() -> None:
    op.drop_table('device_credentials')
    with op.batch_alter_table('enrolment_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrolment_tokens_school_id'))

    op.drop_table('enrolment_tokens')
