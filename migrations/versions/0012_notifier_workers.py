"""Notifier workers' counters for /metrics; an index for the send rate shown on /ops

Revision ID: 0012_notifier_workers
Revises: 0011_priorities
Create Date: 2026-11-30 06:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0012_notifier_workers'
down_revision = '0011_priorities'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('notifier_workers',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('seen_at', sa.DateTime(), nullable=False),
    sa.Column('stopped_at', sa.DateTime(), nullable=True),
    sa.Column('counters', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifier_workers'))
    )
    with op.batch_alter_table('notifier_workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifier_workers_seen_at'), ['seen_at'], unique=False)
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_sent', ['sent_at', 'channel'], unique=False)


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_sent')
    with op.batch_alter_table('notifier_workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifier_workers_seen_at'))
    op.drop_table('notifier_workers')
