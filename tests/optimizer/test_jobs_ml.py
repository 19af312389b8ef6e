"""The ML jobs: retraining registers five models; send times (every customer) and affinities (customers with interactions) are written idempotently."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pandas as pd
import pytest
from django.test import override_settings
from django.utils import timezone

from campaigns.demo_load import delete_demo_data, seed_demo
from campaigns.models import Customer, Event
from marketing_ai import jobs
from marketing_ai.models import JobRun
from optimizer import features, registry, selectors
from optimizer.ml.metrics import circular_hour_distance
from optimizer.models import MLModel, ModelType, UserMerchantAffinity, UserSendTime
from optimizer.services import training
from tests.factories import CustomerFactory


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker, tmp_path_factory):
    """Demo data plus one customer without history, and one trained set of models: built once for the module.

    Committed outside the per-test transactions (each test's own writes are rolled back), and
    deleted when the module ends so other tests never see it.
    """
    folder = tmp_path_factory.mktemp("models")
    with django_db_blocker.unblock(), override_settings(MODEL_ARTIFACT_DIR=folder):
        registry.artifact_cache().clear()
        truth = seed_demo(customers=160, merchants=12, campaigns=4, days=30, seed=5,
                          end_date=timezone.now().date() - dt.timedelta(days=1))
        newcomer = CustomerFactory(customer_id="no_history_user", timezone="Asia/Kolkata", segment=None)
        try:
            training.train_all()
            yield truth, newcomer
        finally:
            MLModel.objects.all().delete()
            newcomer.delete()
            delete_demo_data()
            registry.artifact_cache().clear()


@pytest.fixture
def demo(seeded, db, settings, tmp_path):
    settings.MODEL_ARTIFACT_DIR = tmp_path / "models"  # versions registered by a test go to its own folder
    return seeded


def rows(model) -> list[tuple]:
    fields = [f.name for f in model._meta.fields if f.name not in ("id", "last_updated")]
    return sorted(model.objects.values_list(*fields))


def test_retraining_job_registers_five_active_models_and_records_its_run(demo):
    run = jobs.run("model_retraining")
    assert run.status == JobRun.Status.SUCCEEDED and run.rows_written == 5
    active = {m.model_type: m for m in MLModel.objects.filter(is_active=True)}
    assert set(active) == set(ModelType.values)
    for record in active.values():
        assert record.artifact_sha256 == registry.sha256_of(record.artifact_path)
        assert record.train_end is not None and record.holdout_rows > 0
    assert active[ModelType.CONVERSION].metrics["base_rate"] is not None


def test_same_data_and_seed_give_the_same_metrics_for_all_five_models(demo):
    first = {m.model_type: m for m in MLModel.objects.filter(version=1)}  # trained by the module fixture, seed 0
    second = training.train_all(random_state=training.RANDOM_STATE)
    for model_type in ModelType.values:
        assert second[model_type].version == 2
        assert first[model_type].metrics == second[model_type].metrics, model_type


def test_the_reads_train_all_shares_between_models_give_what_each_model_reads_alone(demo):
    """train_all reads the customers and their open hours once (three points of the split in one query) for the
    propensity and send-time models: each model's data equal its own separate reads."""
    split = features.time_split()
    reads = training.CustomerReads.of(split)
    assert set(reads.hours) == {split.train_cutoff, split.cutoff, split.end}
    shared, alone = training.prepare_propensity(split, reads), training.prepare_propensity(split)
    pd.testing.assert_frame_equal(shared.train, alone.train)
    pd.testing.assert_frame_equal(shared.holdout, alone.holdout)
    assert alone.train["opens"].sum() > 0 and alone.holdout["open_hour_concentration"].gt(0).any()
    shared_st, alone_st = training.prepare_send_time(split, reads), training.prepare_send_time(split)
    for name in ("counts", "holdout_counts", "segments", "customer_pks"):
        np.testing.assert_array_equal(getattr(shared_st, name), getattr(alone_st, name))
    assert alone_st.counts.sum() > 0 and alone_st.holdout_counts.sum() > 0


def test_send_times_are_written_for_every_customer_and_a_rerun_changes_nothing(demo):
    jobs.run("send_times")
    first = rows(UserSendTime)
    assert UserSendTime.objects.count() == Customer.objects.count()
    jobs.run("send_times")
    assert rows(UserSendTime) == first


def test_customer_without_history_gets_the_population_hour_as_fallback_with_its_utc_equivalent(demo):
    _, newcomer = demo
    jobs.run("send_times")
    model = training.load_active(ModelType.SEND_TIME).artifact
    row = UserSendTime.objects.get(customer=newcomer)
    assert row.method == UserSendTime.Method.FALLBACK and row.events_used == 0
    assert row.local_send_time == dt.time(model["population_hour"], 0)
    today = timezone.now().date()
    local = dt.datetime.combine(today, row.local_send_time, tzinfo=zoneinfo.ZoneInfo("Asia/Kolkata"))
    assert row.utc_send_time == local.astimezone(dt.UTC).time().replace(second=0)
    # Everyone below five opens is a fallback; everyone else personal.
    for r in UserSendTime.objects.all():
        assert (r.method == UserSendTime.Method.PERSONAL) == (r.events_used >= 5)


def test_send_time_job_works_before_any_model_is_trained(demo):
    truth, _ = demo
    MLModel.objects.all().delete()  # rolled back after the test
    registry.artifact_cache().clear()
    assert training.load_active(ModelType.SEND_TIME) is None
    jobs.run("send_times")
    personal = pd.DataFrame.from_records(
        list(UserSendTime.objects.filter(events_used__gte=20).values("customer__customer_id", "local_send_time"))
    )
    assert len(personal) > 0
    hours = personal["local_send_time"].map(lambda t: t.hour).to_numpy()
    planted = personal["customer__customer_id"].map(truth["preferred_hour"]).to_numpy()
    assert (circular_hour_distance(hours, planted) <= 1).mean() >= 0.8


def test_affinity_rows_are_top_k_per_customer_in_range_and_idempotent(demo):
    jobs.run("merchant_affinity")
    first = rows(UserMerchantAffinity)
    frame = pd.DataFrame.from_records(list(UserMerchantAffinity.objects.values()))
    assert frame.groupby("customer_id").size().eq(10).all()
    # Every customer with an interaction gets rows; the others are served the popularity fallback at read time.
    interacted = Event.objects.filter(type__in=["notification_opened", "view", "click", "conversion"],
                                      customer__isnull=False, merchant__isnull=False).values("customer_id").distinct().count()
    assert frame["customer_id"].nunique() == interacted
    assert frame["affinity_score"].between(0, 1).all() and frame["confidence"].between(0, 1).all()
    # Scores fall with rank within each customer.
    ordered = frame.sort_values(["customer_id", "rank"])
    assert (ordered.groupby("customer_id")["affinity_score"].diff().dropna() <= 1e-9).all()
    jobs.run("merchant_affinity")
    assert rows(UserMerchantAffinity) == first


def test_affinity_average_purchase_value_is_the_mean_conversion_amount_at_that_merchant(demo):
    jobs.run("merchant_affinity")
    conversions = pd.DataFrame.from_records(
        list(Event.objects.filter(type=Event.Type.CONVERSION).values("customer_id", "merchant_id", "amount"))
    )
    conversions["amount"] = conversions["amount"].astype(float)
    reference = conversions.groupby(["customer_id", "merchant_id"])["amount"].mean()
    stored = pd.DataFrame.from_records(list(UserMerchantAffinity.objects.values("customer_id", "merchant_id", "avg_purchase_value", "engagement_level")))
    stored = stored.set_index(["customer_id", "merchant_id"])
    both = stored.join(reference.rename("reference"), how="inner")
    assert len(both) > 50
    np.testing.assert_allclose(both["avg_purchase_value"].astype(float), both["reference"], atol=0.006)
    never_bought = stored.index.difference(reference.index)
    assert (stored.loc[never_bought, "avg_purchase_value"].astype(float) == 0).all()


def test_customer_without_history_gets_no_rows_and_is_served_popular_merchants_as_fallback(demo):
    _, newcomer = demo
    jobs.run("merchant_affinity")
    assert not UserMerchantAffinity.objects.filter(customer=newcomer).exists()
    answer = selectors.affinity_answer(newcomer)
    assert len(answer) == 10 and all(r["method"] == "fallback" and r["confidence"] == 0 for r in answer)
    # The fallback ranks merchants by how many customers have them in their top lists (counted independently here).
    stored = pd.DataFrame(list(UserMerchantAffinity.objects.values("customer_id", "merchant__merchant_id")))
    favoured = stored.groupby("merchant__merchant_id")["customer_id"].nunique().sort_values(ascending=False)
    assert answer[0]["merchant_id"] in set(favoured[favoured == favoured.iloc[0]].index)


def test_affinity_job_writes_rows_exactly_for_customers_with_interactions_and_drops_stale_rows(demo):
    jobs.run("merchant_affinity")
    interacted = set(Event.objects.filter(type__in=["notification_opened", "view", "click", "conversion"],
                                          customer__isnull=False, merchant__isnull=False).values_list("customer_id", flat=True))
    assert set(UserMerchantAffinity.objects.values_list("customer_id", flat=True).distinct()) == interacted
    # A customer who loses its history loses its rows on the next run.
    lost = sorted(interacted)[0]
    Event.objects.filter(customer_id=lost).delete()
    jobs.run("merchant_affinity")
    assert not UserMerchantAffinity.objects.filter(customer_id=lost).exists()
    assert UserMerchantAffinity.objects.values("customer_id").distinct().count() == len(interacted) - 1


def test_affinity_job_still_ranks_merchants_when_the_active_model_predates_them(demo):
    """Merchants replaced since training (a demo rebuilt with --replace): the stale champion knows none
    of them, so the job fits on current history instead of silently writing no rows."""
    from campaigns.models import Merchant

    replacements = {}
    for old in Merchant.objects.filter(events__isnull=False).distinct():
        replacements[old.pk] = Merchant.objects.create(merchant_id=f"new_{old.merchant_id}", name=f"New {old.name}").pk
    for old_pk, new_pk in replacements.items():
        Event.objects.filter(merchant_id=old_pk).update(merchant_id=new_pk)

    jobs.run("merchant_affinity")
    written = set(UserMerchantAffinity.objects.values_list("merchant_id", flat=True))
    assert written and written <= set(replacements.values())


def test_a_retraining_that_dies_part_way_leaves_no_new_model_version(demo, monkeypatch):
    """Three models are registered before the fourth dies (as when its worker is killed): none of them stays,
    so the run Celery delivers again does not leave extra versions beside its own."""
    before = sorted(MLModel.objects.values_list("model_type", "version", "is_active"))

    def dies(*args, **kwargs):
        raise RuntimeError("worker lost while training affinities")

    monkeypatch.setattr(training, "train_affinity", dies)
    with pytest.raises(RuntimeError, match="worker lost"):
        jobs.run("model_retraining")

    assert sorted(MLModel.objects.values_list("model_type", "version", "is_active")) == before
    run = JobRun.objects.filter(job="model_retraining").latest("started_at")
    assert run.status == JobRun.Status.FAILED and "worker lost while training" in run.error
