"""How many messages an update with "notify" really queued (the timeline says that, not "subscribers notified")

Revision ID: 0013_update_messages_queued
Revises: 0012_notifier_workers
Create Date: 2026-12-05 07:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0013_update_messages_queued'
down_revision = '0012_notifier_workers'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('incident_updates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('messages_queued', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('incident_updates', schema=None) as batch_op:
        batch_op.drop_column('messages_queued')
