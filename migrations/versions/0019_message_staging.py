"""Large sends are staged: narrow rows the workers move into the outbox in batches (notifications.staging)

Revision ID: 0019_message_staging
Revises: 0018_outbox_partial_indexes
Create Date: 2026-12-05 14:20:00

"""
from alembic import op
import sqlalchemy as sa



revision = '0019_message_staging'
down_revision = '0018_outbox_partial_indexes'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'staged_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('stage_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=True),
        sa.Column('ref', sa.Integer(), nullable=False),
        sa.Column('recipient', sa.String(length=254), nullable=False),
        sa.Column('language', sa.String(length=16), nullable=False),
        sa.Column('fair_key', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staged_messages')),
    )
    op.create_table(
        'message_stages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('broadcast_id', sa.Integer(), nullable=True),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('template', sa.String(length=64), nullable=False),
        sa.Column('priority', sa.SmallInteger(), nullable=False),
        sa.Column('urgent', sa.Boolean(), nullable=False),
        sa.Column('key_prefix', sa.String(length=100), nullable=False),
        sa.Column('key_suffix', sa.String(length=100), nullable=False),
        sa.Column('key_by', sa.String(length=8), nullable=False),
        sa.Column('next_id', sa.BigInteger(), nullable=False),
        sa.Column('last_id', sa.BigInteger(), nullable=False),
        sa.Column('remaining', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('due_at', sa.DateTime(), nullable=False),
        sa.Column('moved_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'], name=op.f('fk_message_stages_broadcast_id_broadcasts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_stages')),
    )


def downgrade():
    op.drop_table('message_stages')
    op.drop_table('staged_messages')
