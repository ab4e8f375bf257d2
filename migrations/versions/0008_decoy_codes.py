"""Verification codes for inputs that match no account (account_id NULL), so /my does the same work for both

Revision ID: 0008_decoy_codes
Revises: 0007_schedule
Create Date: 2026-11-30 00:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0008_decoy_codes'
down_revision = '0007_schedule'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('verification_codes', schema=None) as batch_op:
        batch_op.alter_column('account_id', existing_type=sa.Integer(), nullable=True)


def downgrade():
    op.execute("DELETE FROM verification_codes WHERE account_id IS NULL")
    with op.batch_alter_table('verification_codes', schema=None) as batch_op:
        batch_op.alter_column('account_id', existing_type=sa.Integer(), nullable=False)
