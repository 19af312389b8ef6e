"""Data migration: build the analysis rollup (abtests/rollup.py) of every started test from its raw
events and assignments, so existing tests are analysed from the rollup too."""

from django.db import migrations


def build(apps, schema_editor):
    from abtests.rollup import rebuild_rows

    ABTest = apps.get_model("abtests", "ABTest")
    for test in ABTest.objects.exclude(status="draft").order_by("pk"):
        rebuild_rows(test_pk=test.pk, campaign_pk=test.campaign_id, started_at=test.started_at,
                     ended_at=test.ended_at,
                     variant_pks=list(apps.get_model("abtests", "ABTestVariant").objects.filter(test_id=test.pk)
                                      .order_by("position").values_list("pk", flat=True)),
                     sums_model=apps.get_model("abtests", "ABTestArmSums"),
                     outcome_model=apps.get_model("abtests", "ABTestCustomerOutcome"),
                     assignment_model=apps.get_model("abtests", "ABTestAssignment"))


class Migration(migrations.Migration):
    dependencies = [("abtests", "0007_customer_outcomes_and_arm_sums")]
    operations = [migrations.RunPython(build, migrations.RunPython.noop)]
