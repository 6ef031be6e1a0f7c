"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 07:58:50.673877
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('payload_size', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters'))
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letters_reason'), ['reason'], unique=False)
        batch_op.create_index(batch_op.f('ix_dead_letters_received_at'), ['received_at'], unique=False)

    op.create_table('districts',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_districts'))
    )
    op.create_table('schools',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('district_id', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('hours_start', sa.String(length=5), nullable=False),
    sa.Column('hours_end', sa.String(length=5), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_schools_district_id_districts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schools'))
    )
    with op.batch_alter_table('schools', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schools_district_id'), ['district_id'], unique=False)

    op.create_table('equipment_plan',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('room_kind', sa.String(length=32), nullable=False),
    sa.Column('device_kind', sa.String(length=32), nullable=False),
    sa.Column('planned', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_equipment_plan_school_id_schools')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equipment_plan')),
    sa.UniqueConstraint('school_id', 'room_kind', 'device_kind', name=op.f('uq_equipment_plan_school_id'))
    )
    with op.batch_alter_table('equipment_plan', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_equipment_plan_school_id'), ['school_id'], unique=False)

    op.create_table('rooms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_rooms_school_id_schools')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rooms')),
    sa.UniqueConstraint('school_id', 'code', name=op.f('uq_rooms_school_id'))
    )
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rooms_school_id'), ['school_id'], unique=False)

    op.create_table('devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('uid', sa.String(length=64), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('vendor', sa.String(length=120), nullable=True),
    sa.Column('model', sa.String(length=120), nullable=True),
    sa.Column('serial', sa.String(length=120), nullable=True),
    sa.Column('asset_tag', sa.String(length=120), nullable=True),
    sa.Column('mgmt_address', sa.String(length=255), nullable=True),
    sa.Column('watched_by', sa.String(length=16), nullable=False),
    sa.Column('lifecycle', sa.String(length=16), nullable=False),
    sa.Column('is_school_uplink', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], name=op.f('fk_devices_room_id_rooms')),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_devices_school_id_schools')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices')),
    sa.UniqueConstraint('school_id', 'uid', name=op.f('uq_devices_school_id'))
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_devices_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_devices_room_id'), ['room_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_devices_school_id'), ['school_id'], unique=False)

    op.create_table('commands',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('args', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_commands_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commands'))
    )
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commands_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_commands_state'), ['state'], unique=False)

    op.create_table('device_state',
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('session', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=True),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('status_session', sa.BigInteger(), nullable=False),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('agent_version', sa.String(length=32), nullable=True),
    sa.Column('profile', sa.String(length=32), nullable=True),
    sa.Column('hb_session', sa.BigInteger(), nullable=False),
    sa.Column('hb_seq', sa.BigInteger(), nullable=False),
    sa.Column('hb_ts', sa.DateTime(timezone=True), nullable=True),
    sa.Column('uptime_s', sa.Float(), nullable=True),
    sa.Column('cpu_pct', sa.Float(), nullable=True),
    sa.Column('mem_pct', sa.Float(), nullable=True),
    sa.Column('disk_max_pct', sa.Float(), nullable=True),
    sa.Column('temp_c', sa.Float(), nullable=True),
    sa.Column('clock_skew_s', sa.Float(), nullable=True),
    sa.Column('inventory_hash', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_state_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_device_state'))
    )
    op.create_table('incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('flapping', sa.Boolean(), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_incidents_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_incidents_school_id_schools')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents'))
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incidents_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incidents_school_id'), ['school_id'], unique=False)
        batch_op.create_index('uq_incidents_open_device_code', ['device_id', 'code'], unique=True, sqlite_where=sa.text("state != 'resolved'"), postgresql_where=sa.text("state != 'resolved'"))

    op.create_table('observations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('session', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('replayed', sa.Boolean(), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_observations_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_observations')),
    sa.UniqueConstraint('device_id', 'session', 'seq', name=op.f('uq_observations_device_id'))
    )
    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.create_index('ix_observations_device_ts', ['device_id', 'ts'], unique=False)
        batch_op.create_index(batch_op.f('ix_observations_received_at'), ['received_at'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_observations_received_at'))
        batch_op.drop_index('ix_observations_device_ts')

    op.drop_table('observations')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('uq_incidents_open_device_code', sqlite_where=sa.text("state != 'resolved'"), postgresql_where=sa.text("state != 'resolved'"))
        batch_op.drop_index(batch_op.f('ix_incidents_school_id'))
        batch_op.drop_index(batch_op.f('ix_incidents_device_id'))

    op.drop_table('incidents')
    op.drop_table('device_state')
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commands_state'))
        batch_op.drop_index(batch_op.f('ix_commands_device_id'))

    op.drop_table('commands')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_devices_school_id'))
        batch_op.drop_index(batch_op.f('ix_devices_room_id'))
        batch_op.drop_index(batch_op.f('ix_devices_kind'))

    op.drop_table('devices')
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rooms_school_id'))

    op.drop_table('rooms')
    with op.batch_alter_table('equipment_plan', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_equipment_plan_school_id'))

    op.drop_table('equipment_plan')
    with op.batch_alter_table('schools', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schools_district_id'))

    op.drop_table('schools')
    op.drop_table('districts')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dead_letters_received_at'))
        batch_op.drop_index(batch_op.f('ix_dead_letters_reason'))

    op.drop_table('dead_letters')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')

