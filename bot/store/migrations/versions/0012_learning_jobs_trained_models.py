"""the learning loop: background retraining jobs and the registry of trained models

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 18:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'trained_models',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('file_name', sa.String(length=255), nullable=False),
        sa.Column('status', sa.Enum('candidate', 'rejected', 'in_use', 'retired', name='modelstatus',
                                    native_enum=False, length=24), nullable=False),
        sa.Column('examples', sa.Integer(), nullable=False),
        sa.Column('training_seconds', sa.Float(), nullable=True),
        sa.Column('evaluation', sa.JSON(), nullable=True),
        sa.Column('gate_passed', sa.Boolean(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('served_from', sa.DateTime(timezone=True), nullable=True),
        sa.Column('promoted_by', sa.Integer(), nullable=True),
        sa.Column('previous_id', sa.Integer(), nullable=True),
        sa.Column('rolled_back_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['previous_id'], ['trained_models.id'], ),
        sa.ForeignKeyConstraint(['promoted_by'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('file_name'),
    )
    with op.batch_alter_table('trained_models', schema=None) as batch_op:
        batch_op.create_index('ix_trained_models_status', ['status'], unique=False)
        batch_op.create_index('uq_trained_models_one_in_use', ['status'], unique=True,
                              sqlite_where=sa.text("status = 'in_use'"), postgresql_where=sa.text("status = 'in_use'"))
    swap_claims = op.create_table(
        'swap_claims',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('holder', sa.String(length=120), nullable=True),
        sa.Column('until', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(swap_claims, [{'id': 1, 'holder': None, 'until': None}])
    op.create_table(
        'learning_jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('status', sa.Enum('running', 'succeeded', 'failed', name='jobstatus',
                                    native_enum=False, length=24), nullable=False),
        sa.Column('phase', sa.String(length=40), nullable=False),
        sa.Column('progress', sa.Float(), nullable=False),
        sa.Column('estimate_seconds', sa.Float(), nullable=True),
        sa.Column('started_by', sa.Integer(), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('training_seconds', sa.Float(), nullable=True),
        sa.Column('candidate_id', sa.Integer(), nullable=True),
        sa.Column('auto_promote', sa.Boolean(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['candidate_id'], ['trained_models.id'], ),
        sa.ForeignKeyConstraint(['started_by'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('learning_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_learning_jobs_status', ['status'], unique=False)
        batch_op.create_index('uq_learning_jobs_one_running', ['status'], unique=True,
                              sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))


def downgrade() -> None:
    with op.batch_alter_table('learning_jobs', schema=None) as batch_op:
        batch_op.drop_index('uq_learning_jobs_one_running', sqlite_where=sa.text("status = 'running'"),
                            postgresql_where=sa.text("status = 'running'"))
        batch_op.drop_index('ix_learning_jobs_status')
    op.drop_table('learning_jobs')
    op.drop_table('swap_claims')
    with op.batch_alter_table('trained_models', schema=None) as batch_op:
        batch_op.drop_index('uq_trained_models_one_in_use', sqlite_where=sa.text("status = 'in_use'"),
                            postgresql_where=sa.text("status = 'in_use'"))
        batch_op.drop_index('ix_trained_models_status')
    op.drop_table('trained_models')
