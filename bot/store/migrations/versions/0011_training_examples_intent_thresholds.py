"""the learning loop: agents' verdicts as training examples to review, per-intent thresholds

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'training_examples',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('draft_id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=True),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('bot_intent', sa.String(length=120), nullable=True),
        sa.Column('bot_confidence', sa.Float(), nullable=True),
        sa.Column('agent_intent', sa.String(length=120), nullable=True),
        sa.Column('decided_by', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('status', sa.Enum('pending', 'accepted', 'relabelled', 'dropped', name='examplestatus',
                                    native_enum=False, length=24), nullable=False),
        sa.Column('intent', sa.String(length=120), nullable=True),
        sa.Column('reviewed_by', sa.Integer(), nullable=True),
        sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['decided_by'], ['users.id'], ),
        sa.ForeignKeyConstraint(['draft_id'], ['drafts.id'], ),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ),
        sa.ForeignKeyConstraint(['reviewed_by'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('draft_id'),
    )
    with op.batch_alter_table('training_examples', schema=None) as batch_op:
        batch_op.create_index('ix_training_examples_status', ['status', 'id'], unique=False)
    op.create_table(
        'intent_thresholds',
        sa.Column('intent', sa.String(length=120), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=False),
        sa.Column('evidence', sa.JSON(), nullable=False),
        sa.Column('approved_by', sa.Integer(), nullable=True),
        sa.Column('approved_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['approved_by'], ['users.id'], ),
        sa.PrimaryKeyConstraint('intent'),
    )


def downgrade() -> None:
    op.drop_table('intent_thresholds')
    with op.batch_alter_table('training_examples', schema=None) as batch_op:
        batch_op.drop_index('ix_training_examples_status')
    op.drop_table('training_examples')
