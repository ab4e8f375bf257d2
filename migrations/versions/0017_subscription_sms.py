"""Subscriptions by SMS (a texted code, stored hashed, with its expiry and tries) and where a subscription came
from (the status page, or an operator's import with its consent statement)

Revision ID: 0017_subscription_sms
Revises: 0016_subscriptions
Create Date: 2026-12-05 12:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0017_subscription_sms'
down_revision = '0016_subscriptions'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscriptions') as batch:
        batch.add_column(sa.Column('code_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('code_expires_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('code_tries', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('source', sa.String(length=16), nullable=False, server_default='web'))
        batch.add_column(sa.Column('consent', sa.String(length=300), nullable=True))


def downgrade():
    with op.batch_alter_table('subscriptions') as batch:
        batch.drop_column('consent')
        batch.drop_column('source')
        batch.drop_column('code_tries')
        batch.drop_column('code_expires_at')
        batch.drop_column('code_hash')
