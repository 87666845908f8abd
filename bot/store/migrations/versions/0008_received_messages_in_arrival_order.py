"""received messages in arrival order (the worker's claim walks it)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:30:00
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_messages_status_order', 'messages', ['status', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_messages_status_order', table_name='messages')
