"""Public subscriptions: people who asked for updates on the status page (double opt-in), and the components
each follows

Revision ID: 0016_subscriptions
Revises: 0015_webhooks
Create Date: 2026-12-05 10:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0016_subscriptions'
down_revision = '0015_webhooks'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'subscriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('address', sa.String(length=254), nullable=False),
        sa.Column('language', sa.String(length=16), nullable=False),
        sa.Column('follows_all', sa.Boolean(), nullable=False),
        sa.Column('confirmed_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions')),
        sa.UniqueConstraint('channel', 'address', name='uq_subscriptions_channel_address'),
    )
    op.create_index(op.f('ix_subscriptions_confirmed_at'), 'subscriptions', ['confirmed_at'])
    op.create_table(
        'subscription_components',
        sa.Column('subscription_id', sa.Integer(), nullable=False),
        sa.Column('component_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['component_id'], ['components.id'],
                                name=op.f('fk_subscription_components_component_id_components'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'],
                                name=op.f('fk_subscription_components_subscription_id_subscriptions'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('subscription_id', 'component_id', name=op.f('pk_subscription_components')),
    )
    op.create_index(op.f('ix_subscription_components_component_id'), 'subscription_components', ['component_id'])


def downgrade():
    op.drop_index(op.f('ix_subscription_components_component_id'), table_name='subscription_components')
    op.drop_table('subscription_components')
    op.drop_index(op.f('ix_subscriptions_confirmed_at'), table_name='subscriptions')
    op.drop_table('subscriptions')
