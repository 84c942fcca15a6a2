"""commands: reasons shared by alike commands of an event are stored once.

`command_explanations` holds, per event, each kind of explanation the planner gave (its
`explanation_key`): a few thousand for 200,000 commands, where the text was over half of
every command row. A command names its kind by `explanation_number` and keeps in
`explanation` only the reasons that are its own (which commands it supersedes), so that
column may now be NULL. Commands planned before keep their whole explanation where it is;
the plan reads both.

Revision ID: b7e1a0c20011
Revises: b7e1a0c20010
Create Date: 2026-12-06 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e1a0c20011"
down_revision: str | None = "b7e1a0c20010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "command_explanations",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_command_explanations_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "number", name=op.f("pk_command_explanations")),
    )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.add_column(sa.Column("explanation_number", sa.Integer(), nullable=True))
        batch_op.alter_column("explanation", existing_type=sa.JSON(), nullable=True)


def downgrade() -> None:
    # Each command gets its whole explanation back: the shared reasons, then its own.
    bind = op.get_bind()
    commands = sa.table(
        "commands",
        sa.column("id", sa.Uuid()),
        sa.column("event_id", sa.Uuid()),
        sa.column("explanation_number", sa.Integer()),
        sa.column("explanation", sa.JSON()),
    )
    shared = sa.table(
        "command_explanations",
        sa.column("event_id", sa.Uuid()),
        sa.column("number", sa.Integer()),
        sa.column("body", sa.JSON()),
    )
    rows = bind.execute(
        sa.select(commands.c.id, shared.c.body, commands.c.explanation).join(
            shared,
            sa.and_(
                shared.c.event_id == commands.c.event_id,
                shared.c.number == commands.c.explanation_number,
            ),
        )
    ).all()
    for command_id, reasons, own in rows:
        whole = {**reasons, **(own or {})}
        bind.execute(commands.update().where(commands.c.id == command_id).values(explanation=whole))
    bind.execute(commands.update().where(commands.c.explanation.is_(None)).values(explanation={}))
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.alter_column("explanation", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column("explanation_number")
    op.drop_table("command_explanations")
