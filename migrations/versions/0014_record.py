"""The record: each message's status history (notification_events), audit entries that name what they are
about, and stored messages without live personal links

Revision ID: 0014_record
Revises: 0013_update_messages_queued
Create Date: 2026-12-05 09:30:00

"""
import hashlib
import re

from alembic import op
import sqlalchemy as sa


revision = '0014_record'
down_revision = '0013_update_messages_queued'
branch_labels = None
depends_on = None

_LINK = re.compile(r"/m/([A-Za-z0-9_-]{16,})")


def upgrade():
    op.create_table(
        'notification_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('notification_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('error_code', sa.String(length=32), nullable=True),
        sa.Column('error_message', sa.String(length=500), nullable=True),
        sa.Column('payload', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['notification_id'], ['notifications.id'],
                                name=op.f('fk_notification_events_notification_id_notifications'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_events')),
    )
    op.create_index(op.f('ix_notification_events_notification_id'), 'notification_events', ['notification_id'])
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entity_label', sa.String(length=300), nullable=True))
    _mask_stored_links()


def _mask_stored_links():
    """Messages already sent kept their personal links in full: anyone who could read the message log could
    open the subscriber's page. Each becomes "/m/[link #ID]" (notifications.masking's form)."""
    bind = op.get_bind()
    links = sa.table('personal_links', sa.column('id', sa.Integer), sa.column('token_hash', sa.String))

    def masked(text):
        def one(match):
            digest = hashlib.sha256(match.group(1).encode("ascii")).hexdigest()
            found = bind.execute(sa.select(links.c.id).where(links.c.token_hash == digest)).scalar()
            return f"/m/[link #{found}]" if found else "/m/[link]"
        return _LINK.sub(one, text) if text else text

    for table, columns in (('notifications', ('body', 'html_body')), ('inbound_messages', ('reply',))):
        t = sa.table(table, sa.column('id', sa.Integer), *(sa.column(c, sa.Text) for c in columns))
        after = 0
        while True:
            rows = bind.execute(sa.select(t).where(t.c.id > after, sa.or_(*(t.c[c].like('%/m/%') for c in columns)))
                                .order_by(t.c.id).limit(1000)).all()
            if not rows:
                break
            for row in rows:
                bind.execute(t.update().where(t.c.id == row.id).values(
                    {c: masked(getattr(row, c)) for c in columns}))
            after = rows[-1].id


def downgrade():
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_column('entity_label')
    op.drop_index(op.f('ix_notification_events_notification_id'), table_name='notification_events')
    op.drop_table('notification_events')
