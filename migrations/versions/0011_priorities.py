"""Priority classes and fair order in the outbox; the provider budget shared by every worker

Revision ID: 0011_priorities
Revises: 0010_rate_counters
Create Date: 2026-11-30 04:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0011_priorities'
down_revision = '0010_rate_counters'
branch_labels = None
depends_on = None

# notifications.priorities.KINDS as it was at this revision (migrations never import app code).
KINDS = {"verification_code": 1, "reply": 1, "test": 1, "broadcast": 3, "update": 3, "resolution": 3,
         "recovery": 4, "offer": 5, "offer_reminder": 5, "offer_revoked": 5}


def upgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.SmallInteger(), nullable=False, server_default='3'))
        batch_op.add_column(sa.Column('fair_key', sa.BigInteger(), nullable=False, server_default='0'))
    n = sa.table('notifications', sa.column('template', sa.String), sa.column('urgent', sa.Boolean),
                 sa.column('priority', sa.SmallInteger), sa.column('id', sa.Integer),
                 sa.column('fair_key', sa.BigInteger))
    base = sa.case(*[(n.c.template == k, v) for k, v in KINDS.items()], else_=3)
    # Rows already queued keep their order: their id is their place.
    op.execute(n.update().values(priority=sa.case((sa.and_(n.c.urgent.is_(True), base > 2), 2), else_=base),
                                 fair_key=n.c.id))
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_ready',
                              ['channel', 'status', 'priority', 'fair_key', 'next_attempt_at'], unique=False)
    op.create_table('send_budgets',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('tat', sa.Float(), nullable=False),
    sa.Column('last_at', sa.Float(), nullable=False),
    sa.Column('checked_at', sa.Float(), nullable=False),
    sa.Column('granted', sa.SmallInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_send_budgets'))
    )


def downgrade():
    op.drop_table('send_budgets')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_ready')
        batch_op.drop_column('fair_key')
        batch_op.drop_column('priority')
