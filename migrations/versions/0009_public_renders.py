"""The generation of what public pages show (core.renders): one row, renewed with every public change

Revision ID: 0009_public_renders
Revises: 0008_decoy_codes
Create Date: 2026-11-30 01:10:00

"""
import secrets
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0009_public_renders'
down_revision = '0008_decoy_codes'
branch_labels = None
depends_on = None


def upgrade():
    table = op.create_table('public_generation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('changed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_public_generation'))
    )
    op.bulk_insert(table, [{"id": 1, "token": secrets.token_hex(16),
                            "changed_at": datetime.now(timezone.utc).replace(tzinfo=None)}])


def downgrade():
    op.drop_table('public_generation')
