"""live operations: A/B rules (variants), marketing campaigns with their IP ranges as
GiST-indexed `cidr` rows, and the experiment log (one row per player and campaign)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 15:36:40.025531
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Experiment results: players assigned and conversions per campaign, variant and UTC day,
# kept by these triggers in the same transaction as each change to the log, so reading a
# campaign's results sums a few hundred rows instead of counting a million (measured:
# benchmarks/liveops_results.py). Statement-level, with transition tables: a bulk insert or
# a carry-over of many rows costs one aggregate, not one upsert per row. `slot` spreads
# concurrent writers over 16 rows per (campaign, variant, day) so new assignments do not
# queue behind one row lock; rows are upserted in key order so two writers cannot deadlock.
# An UPDATE that leaves the counted columns alone (the carry-over of user_id) nets to
# nothing. A campaign's deletion cascades to both tables: its rows' deletion is skipped.
EXPERIMENT_COUNTS_TRIGGERS = (
    """
CREATE FUNCTION ab_experiment_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Each row counts +1 assigned on the UTC day of assigned_at and, once converted, +1
  -- conversion on the UTC day of conversion_event; rows gone count -1.
  IF TG_OP = 'INSERT' THEN
    INSERT INTO ab_experiment_counts AS c
      (campaign_id, variant_id, day, slot, assigned, conversions)
    SELECT campaign_id, variant_id, day, pg_backend_pid() % 16, sum(assigned), sum(conversions)
    FROM (
      SELECT campaign_id, variant_id, (assigned_at AT TIME ZONE 'UTC')::date AS day,
             1 AS assigned, 0 AS conversions
      FROM new_rows
      UNION ALL
      SELECT campaign_id, variant_id, (conversion_event AT TIME ZONE 'UTC')::date, 0, 1
      FROM new_rows WHERE conversion_event IS NOT NULL
    ) AS delta
    GROUP BY campaign_id, variant_id, day
    ORDER BY campaign_id, variant_id, day
    ON CONFLICT (campaign_id, variant_id, day, slot) DO UPDATE
    SET assigned = c.assigned + excluded.assigned,
        conversions = c.conversions + excluded.conversions;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO ab_experiment_counts AS c
      (campaign_id, variant_id, day, slot, assigned, conversions)
    SELECT campaign_id, variant_id, day, pg_backend_pid() % 16, sum(assigned), sum(conversions)
    FROM (
      SELECT campaign_id, variant_id, (assigned_at AT TIME ZONE 'UTC')::date AS day,
             1 AS assigned, 0 AS conversions
      FROM new_rows
      UNION ALL
      SELECT campaign_id, variant_id, (conversion_event AT TIME ZONE 'UTC')::date, 0, 1
      FROM new_rows WHERE conversion_event IS NOT NULL
      UNION ALL
      SELECT campaign_id, variant_id, (assigned_at AT TIME ZONE 'UTC')::date, -1, 0
      FROM old_rows
      UNION ALL
      SELECT campaign_id, variant_id, (conversion_event AT TIME ZONE 'UTC')::date, 0, -1
      FROM old_rows WHERE conversion_event IS NOT NULL
    ) AS delta
    GROUP BY campaign_id, variant_id, day
    HAVING sum(assigned) <> 0 OR sum(conversions) <> 0
    ORDER BY campaign_id, variant_id, day
    ON CONFLICT (campaign_id, variant_id, day, slot) DO UPDATE
    SET assigned = c.assigned + excluded.assigned,
        conversions = c.conversions + excluded.conversions;
  ELSE
    INSERT INTO ab_experiment_counts AS c
      (campaign_id, variant_id, day, slot, assigned, conversions)
    SELECT campaign_id, variant_id, day, pg_backend_pid() % 16, sum(assigned), sum(conversions)
    FROM (
      SELECT campaign_id, variant_id, (assigned_at AT TIME ZONE 'UTC')::date AS day,
             -1 AS assigned, 0 AS conversions
      FROM old_rows
      UNION ALL
      SELECT campaign_id, variant_id, (conversion_event AT TIME ZONE 'UTC')::date, 0, -1
      FROM old_rows WHERE conversion_event IS NOT NULL
    ) AS delta
    WHERE EXISTS (SELECT FROM campaigns WHERE campaigns.id = delta.campaign_id)
    GROUP BY campaign_id, variant_id, day
    ORDER BY campaign_id, variant_id, day
    ON CONFLICT (campaign_id, variant_id, day, slot) DO UPDATE
    SET assigned = c.assigned + excluded.assigned,
        conversions = c.conversions + excluded.conversions;
  END IF;
  RETURN NULL;
END $$""",
    """
CREATE FUNCTION ab_experiment_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM ab_experiment_counts;
  RETURN NULL;
END $$""",
    "CREATE TRIGGER ab_experiment_counts_insert AFTER INSERT ON ab_experiment_log "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ab_experiment_counts_apply()",
    "CREATE TRIGGER ab_experiment_counts_update AFTER UPDATE ON ab_experiment_log "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ab_experiment_counts_apply()",
    "CREATE TRIGGER ab_experiment_counts_delete AFTER DELETE ON ab_experiment_log "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ab_experiment_counts_apply()",
    "CREATE TRIGGER ab_experiment_counts_truncate AFTER TRUNCATE ON ab_experiment_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION ab_experiment_counts_clear()",
)


def upgrade() -> None:
    op.create_table(
        "ab_rules",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "rule",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "start_at IS NULL OR end_at IS NULL OR start_at < end_at",
            name=op.f("ck_ab_rules_window"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_ab_rules_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ab_rules")),
    )
    op.create_table(
        "campaigns",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "targeting_rules",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "content_ids",
            postgresql.ARRAY(sa.Uuid()),
            server_default=sa.text("ARRAY[]::uuid[]"),
            nullable=False,
        ),
        sa.Column(
            "ab_variants",
            postgresql.ARRAY(sa.Uuid()),
            server_default=sa.text("ARRAY[]::uuid[]"),
            nullable=False,
        ),
        sa.Column("coverage", sa.Float(), server_default=sa.text("1"), nullable=False),
        sa.Column("hash_seed", sa.String(length=64), nullable=False),
        sa.Column("exclusion_group", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "coverage >= 0 AND coverage <= 1", name=op.f("ck_campaigns_coverage_share")
        ),
        sa.CheckConstraint(
            "start_at IS NULL OR end_at IS NULL OR start_at < end_at",
            name=op.f("ck_campaigns_window"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_campaigns_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index("ix_campaigns_exclusion_group", "campaigns", ["exclusion_group"], unique=False)
    op.create_table(
        "ab_experiment_log",
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("anonymous_id", sa.UUID(), nullable=True),
        sa.Column("variant_id", sa.UUID(), nullable=False),
        sa.Column("exclusion_group", sa.String(length=64), nullable=True),
        sa.Column(
            "assigned_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("conversion_event", sa.DateTime(timezone=True), nullable=True),
        sa.Column("conversion_name", sa.String(length=64), nullable=True),
        sa.Column("conversion_value", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.CheckConstraint(
            "user_id IS NOT NULL OR anonymous_id IS NOT NULL",
            name=op.f("ck_ab_experiment_log_someone"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_ab_experiment_log_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ab_experiment_log_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["ab_rules.id"],
            name=op.f("fk_ab_experiment_log_variant_id_ab_rules"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ab_experiment_log")),
    )
    op.create_index(
        "ix_ab_experiment_log_user",
        "ab_experiment_log",
        ["user_id"],
        unique=False,
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.create_index(
        "ix_ab_experiment_log_anonymous",
        "ab_experiment_log",
        ["anonymous_id"],
        unique=False,
        postgresql_where=sa.text("user_id IS NULL"),
    )
    op.create_index(
        "uq_ab_experiment_log_campaign_anonymous",
        "ab_experiment_log",
        ["campaign_id", "anonymous_id"],
        unique=True,
        postgresql_where=sa.text("user_id IS NULL"),
    )
    op.create_index(
        "uq_ab_experiment_log_campaign_user",
        "ab_experiment_log",
        ["campaign_id", "user_id"],
        unique=True,
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.create_index(
        "uq_ab_experiment_log_group_anonymous",
        "ab_experiment_log",
        ["exclusion_group", "anonymous_id"],
        unique=True,
        postgresql_where=sa.text("exclusion_group IS NOT NULL AND user_id IS NULL"),
    )
    op.create_index(
        "uq_ab_experiment_log_group_user",
        "ab_experiment_log",
        ["exclusion_group", "user_id"],
        unique=True,
        postgresql_where=sa.text("exclusion_group IS NOT NULL AND user_id IS NOT NULL"),
    )
    op.create_table(
        "ab_experiment_counts",
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("variant_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("assigned", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("conversions", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_ab_experiment_counts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["ab_rules.id"],
            name=op.f("fk_ab_experiment_counts_variant_id_ab_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "variant_id", "day", "slot", name=op.f("pk_ab_experiment_counts")
        ),
    )
    for statement in EXPERIMENT_COUNTS_TRIGGERS:
        op.execute(statement)
    op.create_table(
        "campaign_ip_ranges",
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("ip_range", postgresql.CIDR(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_ip_ranges_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "ip_range", name=op.f("pk_campaign_ip_ranges")),
    )
    op.create_index(
        "ix_campaign_ip_ranges_ip_range",
        "campaign_ip_ranges",
        ["ip_range"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={"ip_range": "inet_ops"},
    )


def downgrade() -> None:
    for trigger in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER ab_experiment_counts_{trigger} ON ab_experiment_log")
    op.execute("DROP FUNCTION ab_experiment_counts_apply()")
    op.execute("DROP FUNCTION ab_experiment_counts_clear()")
    op.drop_table("ab_experiment_counts")
    op.drop_index(
        "ix_campaign_ip_ranges_ip_range",
        table_name="campaign_ip_ranges",
        postgresql_using="gist",
        postgresql_ops={"ip_range": "inet_ops"},
    )
    op.drop_table("campaign_ip_ranges")
    op.drop_index(
        "uq_ab_experiment_log_group_user",
        table_name="ab_experiment_log",
        postgresql_where=sa.text("exclusion_group IS NOT NULL AND user_id IS NOT NULL"),
    )
    op.drop_index(
        "uq_ab_experiment_log_group_anonymous",
        table_name="ab_experiment_log",
        postgresql_where=sa.text("exclusion_group IS NOT NULL AND user_id IS NULL"),
    )
    op.drop_index(
        "uq_ab_experiment_log_campaign_user",
        table_name="ab_experiment_log",
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.drop_index(
        "uq_ab_experiment_log_campaign_anonymous",
        table_name="ab_experiment_log",
        postgresql_where=sa.text("user_id IS NULL"),
    )
    op.drop_index(
        "ix_ab_experiment_log_anonymous",
        table_name="ab_experiment_log",
        postgresql_where=sa.text("user_id IS NULL"),
    )
    op.drop_index(
        "ix_ab_experiment_log_user",
        table_name="ab_experiment_log",
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.drop_table("ab_experiment_log")
    op.drop_index("ix_campaigns_exclusion_group", table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_table("ab_rules")
