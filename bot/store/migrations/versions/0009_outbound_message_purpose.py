"""outbound messages say what they are for (an answer, or one of the service's own texts)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 10:00:00

Existing outbound messages get their purpose from their outbox item's idempotency key (the
keys the service has always used for its own texts); every other outbound message is an
answer. Uncorrelated ``IN`` sub-queries: one pass over the outbox per purpose, on SQLite and
PostgreSQL alike.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

PURPOSES = ('answer', 'ack', 'handover', 'notice', 'csat', 'broadcast')

# (purpose, outbox key LIKE pattern, a pattern excluded from it): the keys of the service's own texts
SERVICE_KEYS = (
    ('ack', 'ack:%', None),
    ('handover', 'case:%:handover', 'case:%:reply:%'),
    ('handover', 'draft:%:handover', None),
    ('notice', 'notice:%', None),
    ('notice', 'identify:%', None),
    ('notice', 'stop:%', None),
    ('notice', 'opt_in:%', None),
    ('notice', 'subscribe:%', None),
    ('csat', 'csat:%', None),
    ('broadcast', 'broadcast:%', None),
)


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.Enum(*PURPOSES, name='purpose', native_enum=False, length=24),
                                      nullable=True))
    op.execute("UPDATE messages SET purpose = 'answer' WHERE direction = 'out'")
    for purpose, pattern, excluded in SERVICE_KEYS:
        keys = "idempotency_key LIKE :pattern" + (" AND idempotency_key NOT LIKE :excluded" if excluded else "")
        statement = sa.text(f"UPDATE messages SET purpose = :purpose WHERE direction = 'out' AND id IN "
                            f"(SELECT message_id FROM outbox WHERE message_id IS NOT NULL AND {keys})")
        values = {"purpose": purpose, "pattern": pattern, **({"excluded": excluded} if excluded else {})}
        op.get_bind().execute(statement, values)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('purpose')
