"""Rate limits as sliding-window counters (one row per bucket and window) instead of one row per hit

Revision ID: 0010_rate_counters
Revises: 0009_public_renders
Create Date: 2026-11-30 01:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0010_rate_counters'
down_revision = '0009_public_renders'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rate_limit_counters',
    sa.Column('bucket', sa.String(length=200), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'window_start', name=op.f('pk_rate_limit_counters'))
    )
    # Hits in flight are forgotten: at worst a limit starts afresh once, at the upgrade.
    with op.batch_alter_table('rate_limit_hits', schema=None) as batch_op:
        batch_op.drop_index('ix_rate_limit_hits_bucket_at')
    op.drop_table('rate_limit_hits')


def downgrade():
    op.create_table('rate_limit_hits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_limit_hits'))
    )
    with op.batch_alter_table('rate_limit_hits', schema=None) as batch_op:
        batch_op.create_index('ix_rate_limit_hits_bucket_at', ['bucket', 'at'], unique=False)
    op.drop_table('rate_limit_counters')
