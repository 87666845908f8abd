"""public conversations (comment threads), messaging windows and delivery receipts

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 10:00:00

Conversations are private or public (a comment thread under a post: ``thread_id``) and may be
linked to the conversation they were moved to. Outbox items carry their purpose (the messaging
window picks a template by it; existing items take their message's) and the platform's
delivery receipts. ``needs_template`` is a new outbox status (a string column: no constraint
to change).
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

PURPOSES = ('answer', 'ack', 'handover', 'notice', 'csat', 'broadcast')


def upgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('visibility', sa.Enum('private', 'public', name='visibility',
                                                            native_enum=False, length=24),
                                      nullable=False, server_default='private'))
        batch_op.add_column(sa.Column('thread_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('linked_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.Enum(*PURPOSES, name='purpose', native_enum=False, length=24),
                                      nullable=True))
        batch_op.add_column(sa.Column('delivery_status', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('delivery_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('delivery_updated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_outbox_channel_message', ['channel', 'channel_message_id'], unique=False)
        batch_op.create_index('ix_outbox_recipient_sent', ['channel', 'recipient', 'sent_at'], unique=False)
    op.execute("UPDATE outbox SET purpose = (SELECT messages.purpose FROM messages "
               "WHERE messages.id = outbox.message_id) WHERE message_id IS NOT NULL")
    op.execute("UPDATE outbox SET purpose = 'broadcast' WHERE purpose IS NULL AND source = 'broadcast'")


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_recipient_sent')
        batch_op.drop_index('ix_outbox_channel_message')
        batch_op.drop_column('delivery_updated_at')
        batch_op.drop_column('delivery_error')
        batch_op.drop_column('delivery_status')
        batch_op.drop_column('purpose')
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('linked_id')
        batch_op.drop_column('thread_id')
        batch_op.drop_column('visibility')
