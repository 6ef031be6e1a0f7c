"""timetable (school days, per-day hours), holidays and recurring command schedules

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 10:21:08.653398
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('holidays',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=True),
    sa.Column('district_id', sa.String(length=64), nullable=True),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_holidays_district_id_districts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_holidays_school_id_schools'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holidays'))
    )
    with op.batch_alter_table('holidays', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_holidays_district_id'), ['district_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_holidays_school_id'), ['school_id'], unique=False)

    op.create_table('command_schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('args', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('at_time', sa.String(length=5), nullable=False),
    sa.Column('school_days_only', sa.Boolean(), nullable=False),
    sa.Column('expires_in_s', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=True),
    sa.Column('last_occurrence', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_result', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], name=op.f('fk_command_schedules_room_id_rooms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_command_schedules_school_id_schools'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_command_schedules'))
    )
    with op.batch_alter_table('command_schedules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_command_schedules_room_id'), ['room_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_command_schedules_school_id'), ['school_id'], unique=False)

    with op.batch_alter_table('schools', schema=None) as batch_op:
        batch_op.add_column(sa.Column('school_days', sa.String(length=7), server_default='12345', nullable=False))
        batch_op.add_column(sa.Column('day_hours', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default=sa.text("'{}'"), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('schools', schema=None) as batch_op:
        batch_op.drop_column('day_hours')
        batch_op.drop_column('school_days')

    with op.batch_alter_table('command_schedules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_command_schedules_school_id'))
        batch_op.drop_index(batch_op.f('ix_command_schedules_room_id'))

    op.drop_table('command_schedules')
    with op.batch_alter_table('holidays', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_holidays_school_id'))
        batch_op.drop_index(batch_op.f('ix_holidays_district_id'))

    op.drop_table('holidays')
