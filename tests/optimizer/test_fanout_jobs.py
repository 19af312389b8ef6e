"""send_times and merchant_affinity in fan-out parts (optimizer/services/staging.py).

What must hold: the customers are split into ranges that hold every customer exactly once; the parts,
staged and swapped in, write exactly the rows of the one-process run; a part done twice (its helper
died after writing) is swapped in once; every part scores with the model version its run recorded, even
when another version becomes active mid-run; a run that fails leaves the real table as it was and no
staged rows. These run on both legs, the parts in this process (``helpers=0``). With a real Celery
worker on PostgreSQL and Redis (tests/platform/test_fanout_optimizer.py) the jobs themselves fan out.
"""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from campaigns.demo_load import delete_demo_data, seed_demo
from campaigns.models import Customer
from marketing_ai import fanout
from optimizer import registry
from optimizer.models import AffinityStage, MLModel, ModelType, SendTimeStage, UserMerchantAffinity, UserSendTime
from optimizer.services import affinity, send_times, staging, training
from tests.factories import CustomerFactory


# --- the chunking (pure) -----------------------------------------------------------------------------
@hypothesis_settings(max_examples=300, deadline=None)
@given(pks=st.sets(st.integers(1, 10_000_000), max_size=400), parts=st.integers(1, 40))
def test_pk_ranges_hold_every_customer_once_in_order_and_differ_by_at_most_one(pks, parts):
    ranges = staging.pk_ranges(sorted(pks), parts)
    assert len(ranges) == min(parts, len(pks))
    members = [[pk for pk in pks if lo <= pk <= hi] for lo, hi, _ in ranges]
    assert sorted(pk for m in members for pk in m) == sorted(pks)  # each pk in exactly one range
    assert [len(m) for m in members] == [count for _, _, count in ranges]
    assert all(prev[1] < nxt[0] for prev, nxt in zip(ranges, ranges[1:], strict=False))  # in order, no overlap
    if ranges:
        sizes = [count for _, _, count in ranges]
        assert max(sizes) - min(sizes) <= 1


def test_pk_ranges_of_unsorted_repeated_pks_and_of_none():
    assert staging.pk_ranges([9, 3, 3, 7, 1], 2) == [(1, 3, 2), (7, 9, 2)]
    assert staging.pk_ranges([], 4) == []
    assert staging.pk_ranges([5], 4) == [(5, 5, 1)]


@pytest.mark.django_db
def test_customer_ranges_cover_the_customers_in_the_database():
    made = sorted(CustomerFactory().pk for _ in range(11))
    ranges = staging.customer_ranges(3)
    assert [count for _, _, count in ranges] == [4, 4, 3]
    covered = [pk for lo, hi, _ in ranges for pk in Customer.objects.filter(pk__gte=lo, pk__lte=hi).values_list("pk", flat=True)]
    assert sorted(covered) == made


# --- the jobs in parts, on both legs -----------------------------------------------------------------
@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker, tmp_path_factory):
    """Demo data and one trained set of models, committed once for the module and deleted at its end."""
    folder = tmp_path_factory.mktemp("models")
    with django_db_blocker.unblock(), override_settings(MODEL_ARTIFACT_DIR=folder):
        registry.artifact_cache().clear()
        seed_demo(customers=150, merchants=12, campaigns=4, days=30, seed=7,
                  end_date=timezone.now().date() - dt.timedelta(days=1))
        newcomer = CustomerFactory(customer_id="no_history_user", timezone="Asia/Kolkata", segment=None)
        try:
            training.train_all()
            yield
        finally:
            MLModel.objects.all().delete()
            newcomer.delete()
            delete_demo_data()
            registry.artifact_cache().clear()


@pytest.fixture
def demo(seeded, db, settings, tmp_path):
    settings.MODEL_ARTIFACT_DIR = tmp_path / "models"  # versions registered by a test go to its own folder
    return seeded


def table(model) -> list[tuple]:
    """Every row but its id and write moment, sorted (the ids of two runs differ by construction)."""
    fields = [f.attname for f in model._meta.concrete_fields if f.attname not in ("id", "last_updated")]
    return sorted(model.objects.values_list(*fields))


def active(model_type: str) -> MLModel:
    return MLModel.objects.get(model_type=model_type, is_active=True)


JOBS = {
    "send_times": (send_times, send_times.compute_send_times, UserSendTime, SendTimeStage, ModelType.SEND_TIME),
    "merchant_affinity": (affinity, affinity.update_merchant_affinity, UserMerchantAffinity, AffinityStage, ModelType.AFFINITY),
}


@pytest.mark.parametrize("job", JOBS)
@pytest.mark.parametrize("parts", [1, 3, 7])
def test_the_job_in_parts_writes_exactly_the_rows_of_one_process(demo, job, parts):
    module, one_process, target, stage, model_type = JOBS[job]
    alone = one_process()
    expected = table(target)
    assert expected and alone == len(expected)

    now = timezone.now()
    written = module.compute_in_parts(model=active(model_type), now=now, helpers=0, parts=parts)
    assert written == alone
    assert table(target) == expected
    assert set(target.objects.values_list("last_updated", flat=True)) == {now}  # one moment for every part
    assert not stage.objects.exists()  # the staged rows are gone after the swap


@pytest.mark.parametrize("job", JOBS)
def test_a_part_done_twice_is_swapped_in_once(demo, job):
    module, one_process, target, stage, model_type = JOBS[job]
    one_process()
    expected = table(target)

    run, now = uuid.uuid4().hex, timezone.now()
    specs = staging.part_specs(run=run, model=active(model_type), now=now, ranges=staging.customer_ranges(3))
    for spec in specs:
        fanout.PART_WORKERS[module.PART_WORKER](spec)
    again = fanout.PART_WORKERS[module.PART_WORKER](specs[1])  # a helper wrote it, died, the run redid it
    assert again > 0
    assert stage.objects.filter(run=run, part=1).values("attempt").distinct().count() == 2
    written = staging.swap(target, stage, run, ["customer_id"])
    assert written == len(expected)
    assert table(target) == expected
    assert not stage.objects.filter(run=run).exists()


@pytest.mark.parametrize("job", JOBS)
def test_parts_score_with_the_model_version_the_run_recorded_not_the_one_active_now(demo, job):
    module, one_process, target, stage, model_type = JOBS[job]
    one_process()
    with_recorded = table(target)
    recorded = active(model_type)

    # Another version becomes the champion after the run recorded its own: one that answers differently.
    artifact = dict(registry.load(recorded))
    if model_type == ModelType.SEND_TIME:
        artifact["population_hour"] = (int(artifact["population_hour"]) + 12) % 24
        artifact["min_events"] = 10**6  # everyone gets the (moved) population hour
        metrics = {"holdout_hit_rate": 1.0}
    else:
        artifact["popularity"] = artifact["popularity"][::-1].copy()
        artifact["neighbour_weight"] = 0.0
        metrics = {"ndcg_at_10": 1.0}
    newer = registry.register(model_type, artifact, metrics)
    assert newer.is_active
    one_process()
    with_newer = table(target)
    assert with_newer != with_recorded  # the two versions do answer differently

    module.compute_in_parts(model=recorded, now=timezone.now(), helpers=0, parts=3)
    assert table(target) == with_recorded


@pytest.mark.parametrize("job", JOBS)
def test_a_run_whose_part_fails_keeps_the_table_and_leaves_no_staged_rows(demo, job, monkeypatch):
    module, one_process, target, stage, model_type = JOBS[job]
    one_process()
    before = table(target)
    target.objects.filter(customer_id=min(r[0] for r in before)).delete()  # a table the run would change
    before = table(target)
    real = fanout.PART_WORKERS[module.PART_WORKER]

    def fails_on_the_last(spec):
        if spec["part"] == 2:
            raise RuntimeError("the database went away")
        return real(spec)

    monkeypatch.setitem(fanout.PART_WORKERS, module.PART_WORKER, fails_on_the_last)
    with pytest.raises(RuntimeError, match="went away"):
        module.compute_in_parts(model=active(model_type), now=timezone.now(), helpers=0, parts=3)
    assert table(target) == before
    assert not stage.objects.exists()


@pytest.mark.parametrize("job", JOBS)
def test_without_helpers_the_job_does_not_stage(demo, job, settings):
    module, one_process, target, stage, model_type = JOBS[job]
    settings.JOB_FANOUT_HELPERS = 4
    settings.CELERY_TASK_ALWAYS_EAGER = True  # no broker (the demo): fanout.helpers_configured() is 0
    assert fanout.helpers_configured() == 0
    written = one_process()
    assert written == target.objects.count() > 0
    assert not stage.objects.exists()


def test_an_affinity_champion_that_knows_too_few_merchants_is_not_fanned_out(demo):
    from campaigns.models import Event, Merchant

    assert affinity.fan_out_model(timezone.now()) == active(ModelType.AFFINITY)
    for old in Merchant.objects.filter(events__isnull=False).distinct():
        new = Merchant.objects.create(merchant_id=f"new_{old.merchant_id}", name=f"New {old.name}")
        Event.objects.filter(merchant_id=old.pk).update(merchant_id=new.pk)
    assert affinity.fan_out_model(timezone.now()) is None  # the run fits on every customer, in one process


def test_merchant_totals_equal_the_customer_interactions_summed_per_merchant(demo):
    from optimizer import features

    now = timezone.now()
    per_pair = features.customer_merchant_interactions(None, now)
    expected = per_pair.groupby("merchant_id")["weight"].sum()
    totals = features.merchant_interaction_weights(now).set_index("merchant_id")["weight"]
    assert list(totals.index) == list(expected.index)
    np.testing.assert_allclose(totals.to_numpy(), expected.to_numpy(), rtol=1e-12)


def test_the_staging_tables_skip_the_write_ahead_log_on_postgresql(postgres):
    with postgres.cursor() as cursor:
        cursor.execute("SELECT relname, relpersistence FROM pg_class WHERE relname IN (%s, %s)",
                       [SendTimeStage._meta.db_table, AffinityStage._meta.db_table])
        assert dict(cursor.fetchall()) == {SendTimeStage._meta.db_table: "u", AffinityStage._meta.db_table: "u"}


@pytest.mark.django_db
def test_empty_table_removes_every_row_of_the_staging_table_on_either_database():
    from marketing_ai import db

    for run in ("a", "b"):
        SendTimeStage.objects.create(run=run, part=0, attempt="x", customer_id=1, last_updated=timezone.now(),
                                     local_send_time=dt.time(9), utc_send_time=dt.time(8), expected_improvement=0.0,
                                     confidence=0.0, events_used=0, method="fallback")
    db.empty_table(SendTimeStage._meta.db_table)
    assert not SendTimeStage.objects.exists()
