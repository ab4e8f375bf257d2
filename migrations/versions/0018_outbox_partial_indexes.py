"""The outbox's sent-time and provider-id indexes hold sent rows only (partial): a queued row has neither, so
queueing a broadcast no longer writes a million NULL entries into each

Revision ID: 0018_outbox_partial_indexes
Revises: 0017_subscription_sms
Create Date: 2026-12-05 12:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0018_outbox_partial_indexes'
down_revision = '0017_subscription_sms'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_notifications_sent', table_name='notifications')
    op.drop_index('ix_notifications_provider_id', table_name='notifications')
    op.create_index('ix_notifications_sent', 'notifications', ['sent_at', 'channel'],
                    sqlite_where=sa.text('sent_at IS NOT NULL'), postgresql_where=sa.text('sent_at IS NOT NULL'))
    op.create_index('ix_notifications_provider_id', 'notifications', ['provider_id'],
                    sqlite_where=sa.text('provider_id IS NOT NULL'),
                    postgresql_where=sa.text('provider_id IS NOT NULL'))


def downgrade():
    op.drop_index('ix_notifications_provider_id', table_name='notifications')
    op.drop_index('ix_notifications_sent', table_name='notifications')
    op.create_index('ix_notifications_provider_id', 'notifications', ['provider_id'])
    op.create_index('ix_notifications_sent', 'notifications', ['sent_at', 'channel'])
