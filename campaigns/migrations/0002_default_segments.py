from django.db import migrations

SEGMENTS = {
    "new_users": "Signed up within the last 30 days and no conversion yet.",
    "returning_users": "At least one conversion, below the high-value threshold.",
    "high_value_users": "Conversion revenue in the last 180 days at or above the high-value threshold.",
}


def create(apps, schema_editor):
    Segment = apps.get_model("campaigns", "Segment")
    for name, description in SEGMENTS.items():
        Segment.objects.get_or_create(name=name, defaults={"description": description})


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
