"""recovery_events keeps one foreign key: to its affected account (whose cascade erases it)

Revision ID: 0020_recovery_events_lean
Revises: 0019_message_staging
Create Date: 2026-12-05 19:10:00

The other two were checked once per history row written and guarded nothing the schema does not already hold:
- category_id: every history row is written beside the recovery_statuses row of the same (account, category),
  whose own foreign key checks the category in the same transaction; a category with statuses cannot be
  removed; and an incident's deletion takes its events with its affected accounts.
- import_id: "which import wrote this", for the account page's link. Import jobs are never deleted but with
  their incident (whose events go with it), and the ON DELETE SET NULL had no index to run on: it scanned the
  whole history once per job deleted.
On PostgreSQL each check cost 4-5 us a row: a 1,000,000-row recovery import wrote its history in 21.5 s, and
writes it in 8.5 s without them (bench/import_recovery.py --postgres).
"""
from alembic import op


revision = '0020_recovery_events_lean'
down_revision = '0019_message_staging'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('recovery_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_recovery_events_category_id_recovery_categories'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_recovery_events_import_id_import_jobs'), type_='foreignkey')


def downgrade():
    with op.batch_alter_table('recovery_events', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_recovery_events_import_id_import_jobs'), 'import_jobs',
                                    ['import_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_recovery_events_category_id_recovery_categories'),
                                    'recovery_categories', ['category_id'], ['id'], ondelete='CASCADE')
