"""incident workflow and notifications

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 09:12:50.156674
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('maintenance_windows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_maintenance_windows_school_id_schools'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_maintenance_windows'))
    )
    with op.batch_alter_table('maintenance_windows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_maintenance_windows_school_id'), ['school_id'], unique=False)

    op.create_table('notification_routes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=500), nullable=False),
    sa.Column('min_severity', sa.String(length=16), nullable=False),
    sa.Column('lang', sa.String(length=5), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_notification_routes_school_id_schools'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_routes'))
    )
    with op.batch_alter_table('notification_routes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_routes_school_id'), ['school_id'], unique=False)

    op.create_table('incident_comments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('author', sa.String(length=120), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_comments_incident_id_incidents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_comments'))
    )
    with op.batch_alter_table('incident_comments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_comments_incident_id'), ['incident_id'], unique=False)

    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assignee', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_by', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_incidents_notified_at'), ['notified_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incidents_notified_at'))
        batch_op.drop_column('notified_at')
        batch_op.drop_column('resolved_by')
        batch_op.drop_column('acknowledged_by')
        batch_op.drop_column('acknowledged_at')
        batch_op.drop_column('assignee')

    with op.batch_alter_table('incident_comments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_comments_incident_id'))

    op.drop_table('incident_comments')
    with op.batch_alter_table('notification_routes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_routes_school_id'))

    op.drop_table('notification_routes')
    with op.batch_alter_table('maintenance_windows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_maintenance_windows_school_id'))

    op.drop_table('maintenance_windows')
