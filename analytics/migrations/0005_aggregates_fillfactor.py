from django.db import migrations

from marketing_ai.db import leave_room_for_updates

# Every re-run of a day rewrites every row of that day (and of its week and month) in place; half of each
# page is kept free so that those updates stay on their page (HOT: no index entries). See
# marketing_ai.db.leave_room_for_updates.
AGGREGATE_TABLES = ("campaign_analytics_daily", "campaign_segment_analytics", "campaign_trend_data")
FILLFACTOR = 50


def leave_room(apps, schema_editor):
    for table in AGGREGATE_TABLES:
        leave_room_for_updates(table, FILLFACTOR, schema_editor.connection)


def fill_pages(apps, schema_editor):
    for table in AGGREGATE_TABLES:
        leave_room_for_updates(table, 100, schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0004_alert_subscriptions'),
    ]

    operations = [
        migrations.RunPython(leave_room, fill_pages),
    ]
