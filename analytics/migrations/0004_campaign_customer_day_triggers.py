"""Keep analytics_campaign_customer_day current from campaigns_event, in the database.

Triggers see every write to the events (ingest's COPY, import, seed_demo, the admin, raw SQL) in the
writer's own transaction, so the rollup can never miss a batch or count one twice.

PostgreSQL: one statement-level trigger per operation with transition tables: a batch of 5,000 events
costs one grouped upsert, not 5,000. The triggers are ENABLE ALWAYS so that they also fire under
``session_replication_role = replica`` (seed_demo's COPY switches the foreign-key triggers off that way).
SQLite (demo, bare tests): row-level triggers doing the same per event.

The SQL is frozen here (migrations must not change with the code); ``analytics.services.rebuild_rollup``
recomputes the table from the events with the ORM and is tested to agree with these triggers.
"""

from django.db import migrations

TABLE = "analytics_campaign_customer_day"
COLUMNS = "campaign_id, customer_id, date, sends, opens, views, clicks, conversions, revenue, cost, events"
COUNTED = ("sends", "opens", "views", "clicks", "conversions", "revenue", "cost", "events")
KEY = "(date, campaign_id, (COALESCE(customer_id, 0)))"


def _pg_grouped(source: str) -> str:
    """One signed, grouped row per key of ``source`` (rows with a ``sign`` column: +1 added, -1 removed)."""
    return f"""
        SELECT campaign_id, customer_id, (occurred_at AT TIME ZONE 'UTC')::date,
               SUM(sign) FILTER (WHERE type = 'notification_sent'),
               SUM(sign) FILTER (WHERE type = 'notification_opened'),
               SUM(sign) FILTER (WHERE type = 'view'),
               SUM(sign) FILTER (WHERE type = 'click'),
               SUM(sign) FILTER (WHERE type = 'conversion'),
               COALESCE(SUM(sign * amount) FILTER (WHERE type = 'conversion'), 0),
               COALESCE(SUM(sign * amount) FILTER (WHERE type = 'spend'), 0),
               SUM(sign)
        FROM ({source}) AS changes
        GROUP BY 3, 1, 2
        ORDER BY 3, 1, 2  -- one lock order for concurrent batches: no deadlock between them
    """


def _pg_apply(source: str, *, may_empty: bool) -> str:
    counts = ", ".join(f"{c} = r.{c} + EXCLUDED.{c}" for c in COUNTED)
    coalesced = ", ".join(f"COALESCE({c}, 0)" for c in COUNTED)
    upsert = f"""
            INSERT INTO {TABLE} AS r ({COLUMNS})
            SELECT campaign_id, customer_id, date, {coalesced}
            FROM ({_pg_grouped(source)}) AS g (campaign_id, customer_id, date, {", ".join(COUNTED)})
            ON CONFLICT {KEY} DO UPDATE SET {counts}"""
    if not may_empty:
        return upsert + ";"
    # Rows left with no event go. A second statement: the main query of the upsert's own WITH could not
    # delete a row that the same statement updated.
    return f"""
        WITH changed AS ({upsert} RETURNING r.id, r.events)
        SELECT array_agg(id) INTO emptied FROM changed WHERE events <= 0;
        IF emptied IS NOT NULL THEN
            DELETE FROM {TABLE} WHERE id = ANY (emptied);
        END IF;
    """


EVENT_COLUMNS = "campaign_id, customer_id, occurred_at, type, amount"
PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION analytics_campaign_customer_day_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    emptied bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_pg_apply(f"SELECT {EVENT_COLUMNS}, 1 AS sign FROM new_rows", may_empty=False)}
    ELSIF TG_OP = 'DELETE' THEN
        {_pg_apply(f"SELECT {EVENT_COLUMNS}, -1 AS sign FROM old_rows", may_empty=True)}
    ELSE
        {_pg_apply(f"SELECT {EVENT_COLUMNS}, -1 AS sign FROM old_rows UNION ALL SELECT {EVENT_COLUMNS}, 1 FROM new_rows", may_empty=True)}
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION analytics_campaign_customer_day_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- DELETE, not TRUNCATE: a TRUNCATE of both tables in one statement (Django's flush) holds this one.
    DELETE FROM {TABLE};
    RETURN NULL;
END $$;
"""
PG_TRIGGERS = {
    "insert": "AFTER INSERT ON campaigns_event REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
    "delete": "AFTER DELETE ON campaigns_event REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
    "update": "AFTER UPDATE ON campaigns_event REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT",
}


def _sqlite_apply(row: str, sign: int) -> str:
    def is_type(t: str) -> str:
        return f"({sign} * ({row}.type = '{t}'))"

    def money(t: str) -> str:
        return f"(CASE WHEN {row}.type = '{t}' THEN {sign} * COALESCE({row}.amount, 0) ELSE 0 END)"

    match = (f"date = date({row}.occurred_at) AND campaign_id = {row}.campaign_id"
             f" AND COALESCE(customer_id, 0) = COALESCE({row}.customer_id, 0)")
    return f"""
        INSERT OR IGNORE INTO {TABLE} ({COLUMNS})
            VALUES ({row}.campaign_id, {row}.customer_id, date({row}.occurred_at), 0, 0, 0, 0, 0, 0, 0, 0);
        UPDATE {TABLE} SET
            sends = sends + {is_type("notification_sent")}, opens = opens + {is_type("notification_opened")},
            views = views + {is_type("view")}, clicks = clicks + {is_type("click")},
            conversions = conversions + {is_type("conversion")},
            revenue = revenue + {money("conversion")}, cost = cost + {money("spend")}, events = events + {sign}
        WHERE {match};
        DELETE FROM {TABLE} WHERE {match} AND events <= 0;
    """


SQLITE_TRIGGERS = {
    "insert": f"AFTER INSERT ON campaigns_event BEGIN {_sqlite_apply('NEW', 1)} END",
    "delete": f"AFTER DELETE ON campaigns_event BEGIN {_sqlite_apply('OLD', -1)} END",
    "update": (f"AFTER UPDATE OF {EVENT_COLUMNS} ON campaigns_event BEGIN "
               f"{_sqlite_apply('OLD', -1)} {_sqlite_apply('NEW', 1)} END"),
}

FILL = {
    # Events already stored when the triggers arrive (an existing installation).
    "postgresql": f"""INSERT INTO {TABLE} ({COLUMNS})
        SELECT campaign_id, customer_id, date, {", ".join(f"COALESCE({c}, 0)" for c in COUNTED)}
        FROM ({_pg_grouped(f"SELECT {EVENT_COLUMNS}, 1 AS sign FROM campaigns_event")})
            AS g (campaign_id, customer_id, date, {", ".join(COUNTED)})""",
    "sqlite": f"""INSERT INTO {TABLE} ({COLUMNS})
        SELECT campaign_id, customer_id, date(occurred_at),
               SUM(type = 'notification_sent'), SUM(type = 'notification_opened'), SUM(type = 'view'),
               SUM(type = 'click'), SUM(type = 'conversion'),
               COALESCE(SUM(CASE WHEN type = 'conversion' THEN amount END), 0),
               COALESCE(SUM(CASE WHEN type = 'spend' THEN amount END), 0), COUNT(*)
        FROM campaigns_event GROUP BY campaign_id, customer_id, date(occurred_at)""",
}


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION, params=None)
        for op, spec in PG_TRIGGERS.items():
            name = f"campaigns_event_rollup_{op}"
            schema_editor.execute(f"CREATE TRIGGER {name} {spec} EXECUTE FUNCTION analytics_campaign_customer_day_sync()")
            schema_editor.execute(f"ALTER TABLE campaigns_event ENABLE ALWAYS TRIGGER {name}")
        schema_editor.execute(
            "CREATE TRIGGER campaigns_event_rollup_truncate AFTER TRUNCATE ON campaigns_event FOR EACH STATEMENT"
            " EXECUTE FUNCTION analytics_campaign_customer_day_truncate()"
        )
        schema_editor.execute("ALTER TABLE campaigns_event ENABLE ALWAYS TRIGGER campaigns_event_rollup_truncate")
    elif vendor == "sqlite":
        for op, spec in SQLITE_TRIGGERS.items():
            schema_editor.execute(f"CREATE TRIGGER campaigns_event_rollup_{op} {spec}")
    else:
        raise NotImplementedError(f"no event rollup triggers for {vendor}")
    schema_editor.execute(f"DELETE FROM {TABLE}")
    schema_editor.execute(FILL[vendor], params=None)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for op in (*PG_TRIGGERS, "truncate"):
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS campaigns_event_rollup_{op} ON campaigns_event")
        elif op != "truncate":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS campaigns_event_rollup_{op}")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS analytics_campaign_customer_day_sync()")
        schema_editor.execute("DROP FUNCTION IF EXISTS analytics_campaign_customer_day_truncate()")


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0003_campaign_customer_day"),
    ]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
