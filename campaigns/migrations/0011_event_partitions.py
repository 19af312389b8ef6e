"""PostgreSQL: the events table partitioned by UTC month of ``occurred_at`` (docs/operations.md, "Event
partitions"). SQLite keeps the plain table; Django's model state does not change (no operation here touches
it), so ``Event`` keeps ``id`` as its primary key and the ``event_event_id_unique`` constraint in its state.

On PostgreSQL:
- ``campaigns_event`` becomes a table partitioned by range of ``occurred_at``: one partition per month from
  the oldest stored event to ``EVENT_PARTITIONS_AHEAD_MONTHS`` ahead, and ``campaigns_event_default`` for any
  other month (the ``event_partitions`` job moves such rows out when it creates their month).
- Its primary key is (id, occurred_at): a partitioned table's unique indexes must include the partition key.
  ``id`` stays unique in practice: every row takes it from the one identity sequence.
- ``event_id`` cannot have a unique index across partitions, so ``campaigns_event_key`` (event_id primary key,
  occurred_at) holds every stored id: statement-level triggers on the events table insert the ids of every
  INSERT or COPY (a duplicate fails the statement exactly as the unique index did), delete them with the rows,
  follow an UPDATE, and empty the key table on TRUNCATE. They are ENABLE ALWAYS, so a COPY run with
  ``session_replication_role = replica`` (``marketing_ai.db.copy_in``) still records its ids.
- ``event_id`` keeps a (non-unique) varchar_pattern_ops index for ``event_id LIKE 'demo_%'`` deletes.

An existing table is converted in this migration's transaction: rename it, create the partitioned table and
its partitions, copy every row (INSERT ... SELECT, with the index writes of the new table), fill the key table,
drop the old table. The events table is locked (reads and writes wait) for the whole copy: measured 44 s
(``manage.py migrate campaigns 0011``, Django start included) for 1.5 million events over 6 months on the
2-core development machine at load 6-9, so about 5 minutes per 10 million events. Plan a maintenance window.
"""

import datetime as dt

from django.db import migrations

from campaigns import partitions

OLD = "campaigns_event_unpartitioned"
# The model's indexes, re-created on the partitioned table (same names, so later migrations find them).
INDEXES = {
    "event_occurred": "(occurred_at)",
    "event_campaign_occurred": "(campaign_id, occurred_at)",
    "event_merchant": "(merchant_id) WHERE merchant_id IS NOT NULL",
    "event_offer": "(offer_id) WHERE offer_id IS NOT NULL",
    "event_conversion_attribution": "(campaign_id, customer_id, occurred_at) WHERE type = 'conversion'",
}

KEY_TRIGGERS = """
CREATE FUNCTION campaigns_event_key_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- marketing_ai.db.insert_new_rows claims the ids itself (INSERT ... ON CONFLICT DO NOTHING) before it
    -- writes the rows it claimed, and says so for its own statement.
    IF current_setting('campaigns.event_keys_claimed', true) = 'on' THEN
        RETURN NULL;
    END IF;
    -- In id order, as the unique index took its locks: concurrent batches wait, they do not deadlock.
    INSERT INTO campaigns_event_key (event_id, occurred_at) SELECT event_id, occurred_at FROM new_rows ORDER BY event_id;
    RETURN NULL;
END $$;

CREATE FUNCTION campaigns_event_key_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM campaigns_event_key k USING old_rows o WHERE k.event_id = o.event_id;
    RETURN NULL;
END $$;

CREATE FUNCTION campaigns_event_key_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM campaigns_event_key k USING old_rows o WHERE k.event_id = o.event_id;
    INSERT INTO campaigns_event_key (event_id, occurred_at) SELECT event_id, occurred_at FROM new_rows ORDER BY event_id;
    RETURN NULL;
END $$;

CREATE FUNCTION campaigns_event_key_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE campaigns_event_key;
    RETURN NULL;
END $$;

CREATE TRIGGER campaigns_event_key_insert AFTER INSERT ON campaigns_event
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION campaigns_event_key_insert();
CREATE TRIGGER campaigns_event_key_delete AFTER DELETE ON campaigns_event
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION campaigns_event_key_delete();
CREATE TRIGGER campaigns_event_key_update AFTER UPDATE ON campaigns_event
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION campaigns_event_key_update();
CREATE TRIGGER campaigns_event_key_truncate AFTER TRUNCATE ON campaigns_event
    FOR EACH STATEMENT EXECUTE FUNCTION campaigns_event_key_truncate();
ALTER TABLE campaigns_event ENABLE ALWAYS TRIGGER campaigns_event_key_insert;
ALTER TABLE campaigns_event ENABLE ALWAYS TRIGGER campaigns_event_key_delete;
ALTER TABLE campaigns_event ENABLE ALWAYS TRIGGER campaigns_event_key_update;
ALTER TABLE campaigns_event ENABLE ALWAYS TRIGGER campaigns_event_key_truncate;
"""


def partition(apps, schema_editor):
    conn = schema_editor.connection
    if conn.vendor != "postgresql":
        return  # SQLite: the plain table stays (docs/operations.md, "Event partitions")
    from django.conf import settings
    from django.utils import timezone

    run = schema_editor.execute
    run("LOCK TABLE campaigns_event IN ACCESS EXCLUSIVE MODE")
    run(f"ALTER TABLE campaigns_event RENAME TO {OLD}")
    run(f"ALTER TABLE {OLD} RENAME CONSTRAINT campaigns_event_pkey TO {OLD}_pkey")
    run("DROP INDEX event_event_id_unique")  # Django made the constraint a unique index (it has an opclass)
    for name in INDEXES:
        run(f"DROP INDEX {name}")
    # Same columns, defaults and identity (a new sequence, moved past the old ids below).
    run(f"CREATE TABLE campaigns_event (LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY) PARTITION BY RANGE (occurred_at)")
    run("ALTER TABLE campaigns_event ADD CONSTRAINT campaigns_event_pkey PRIMARY KEY (id, occurred_at)")
    for name, columns in INDEXES.items():
        run(f"CREATE INDEX {name} ON campaigns_event {columns}")
    run("CREATE INDEX event_event_id ON campaigns_event (event_id varchar_pattern_ops)")
    run(f"CREATE TABLE {partitions.KEY_TABLE} (event_id varchar(64) PRIMARY KEY, occurred_at timestamptz NOT NULL)")
    run(f"CREATE TABLE {partitions.DEFAULT_PARTITION} PARTITION OF campaigns_event DEFAULT")

    with conn.cursor() as cursor:
        cursor.execute(f"SELECT min(occurred_at), max(occurred_at) FROM {OLD}")
        oldest, newest = cursor.fetchone()
    this_month = partitions.month_of(timezone.now().date())
    first = partitions.add_months(this_month, -1)
    last = partitions.add_months(this_month, settings.EVENT_PARTITIONS_AHEAD_MONTHS)
    if oldest is not None:
        first = min(first, partitions.month_of(oldest.astimezone(dt.UTC).date()))
        last = max(last, partitions.month_of(newest.astimezone(dt.UTC).date()))
    month = first
    while month <= last:
        partitions.create_month(month, conn)
        month = partitions.add_months(month, 1)

    # The rows, then their ids (the triggers are created after the copy: one set-based key insert instead).
    columns = ", ".join(f'"{c}"' for c in _columns(conn, OLD))
    run(f"INSERT INTO campaigns_event ({columns}) SELECT {columns} FROM {OLD}")
    run(f"INSERT INTO {partitions.KEY_TABLE} (event_id, occurred_at) SELECT event_id, occurred_at FROM {OLD}")
    run("SELECT setval(pg_get_serial_sequence('campaigns_event', 'id'),"
        f" GREATEST((SELECT max(id) FROM {OLD}), 1), (SELECT max(id) FROM {OLD}) IS NOT NULL)")
    run(f"DROP TABLE {OLD}")
    run(KEY_TRIGGERS)


def unpartition(apps, schema_editor):
    conn = schema_editor.connection
    if conn.vendor != "postgresql":
        return
    run = schema_editor.execute
    run("LOCK TABLE campaigns_event IN ACCESS EXCLUSIVE MODE")
    for name in ("insert", "delete", "update", "truncate"):
        run(f"DROP TRIGGER campaigns_event_key_{name} ON campaigns_event")
        run(f"DROP FUNCTION campaigns_event_key_{name}()")
    run(f"ALTER TABLE campaigns_event RENAME TO {OLD}")
    run(f"ALTER TABLE {OLD} RENAME CONSTRAINT campaigns_event_pkey TO {OLD}_pkey")
    for name in [*INDEXES, "event_event_id"]:
        run(f"ALTER INDEX {name} RENAME TO {name}_partitioned")
    run(f"CREATE TABLE campaigns_event (LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY)")
    run("ALTER TABLE campaigns_event ADD CONSTRAINT campaigns_event_pkey PRIMARY KEY (id)")
    columns = ", ".join(f'"{c}"' for c in _columns(conn, OLD))
    run(f"INSERT INTO campaigns_event ({columns}) SELECT {columns} FROM {OLD}")
    run("SELECT setval(pg_get_serial_sequence('campaigns_event', 'id'),"
        f" GREATEST((SELECT max(id) FROM {OLD}), 1), (SELECT max(id) FROM {OLD}) IS NOT NULL)")
    run(f"DROP TABLE {OLD}")
    run(f"DROP TABLE {partitions.KEY_TABLE}")
    run("CREATE UNIQUE INDEX event_event_id_unique ON campaigns_event (event_id varchar_pattern_ops)")
    for name, columns in INDEXES.items():
        run(f"CREATE INDEX {name} ON campaigns_event {columns}")


def _columns(conn, table: str) -> list[str]:
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [table],
        )
        return [name for (name,) in cursor.fetchall()]


class Migration(migrations.Migration):

    dependencies = [
        ("campaigns", "0010_event_channel"),
    ]

    operations = [
        migrations.RunPython(partition, unpartition, elidable=False),
    ]
