"""Model registry: promotion by holdout metric with tolerance, rollback, sha256 and type checks, determinism."""

from __future__ import annotations

import fractions
import functools

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from django.core.management import call_command
from django.core.management.base import CommandError
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from optimizer import registry
from optimizer.ml import conversion
from optimizer.models import MLModel, ModelType

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifacts_in_tmp(settings, tmp_path):
    settings.MODEL_ARTIFACT_DIR = tmp_path / "models"
    settings.MODEL_PROMOTION_TOLERANCE = 0.01
    registry.artifact_cache().clear()


@functools.cache
def small_artifact() -> dict:
    """A fitted gradient-boosting model (its tree predictors are on the allow-list) and an array; fitted once."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    with threadpool_limits(1):
        estimator = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(x, y)
    return {"estimator": estimator, "weights": np.arange(3.0)}


def register(model_type=ModelType.CONVERSION, **metrics) -> MLModel:
    return registry.register(model_type, small_artifact(), metrics)


def test_first_version_becomes_active():
    first = register(roc_auc=0.70)
    assert first.version == 1 and first.is_active
    assert "first version" in first.promotion_note


def test_better_or_slightly_worse_version_is_promoted_and_the_old_one_retired():
    v1 = register(roc_auc=0.70)
    v2 = register(roc_auc=0.695)  # worse by 0.005, within the 0.01 tolerance
    v1.refresh_from_db()
    assert v2.is_active and not v1.is_active
    v3 = register(roc_auc=0.80)
    assert v3.is_active
    assert MLModel.objects.filter(model_type=ModelType.CONVERSION, is_active=True).count() == 1


def test_version_worse_beyond_tolerance_is_kept_inactive_with_the_reason():
    v1 = register(roc_auc=0.75)
    v2 = register(roc_auc=0.70)
    v1.refresh_from_db()
    assert v1.is_active and not v2.is_active
    assert "not promoted" in v2.promotion_note and "0.7000" in v2.promotion_note and "0.7500" in v2.promotion_note
    assert v2.artifact_path and registry.load(v2)["weights"].tolist() == [0.0, 1.0, 2.0]  # kept, loadable


def test_lower_is_better_metric_compares_the_other_way():
    v1 = register(ModelType.OFFER_RESPONSE, holdout_log_loss=0.100)
    v2 = register(ModelType.OFFER_RESPONSE, holdout_log_loss=0.150)
    v3 = register(ModelType.OFFER_RESPONSE, holdout_log_loss=0.090)
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert not v2.is_active and v3.is_active and not v1.is_active


def test_version_without_a_holdout_metric_is_not_promoted():
    register(roc_auc=0.7)
    blind = register(roc_auc=None)
    assert not blind.is_active and "no holdout roc_auc" in blind.promotion_note


def test_activate_rolls_back_to_an_older_version():
    register(roc_auc=0.70)
    register(roc_auc=0.80)
    registry.activate(ModelType.CONVERSION, 1)
    active = MLModel.objects.get(model_type=ModelType.CONVERSION, is_active=True)
    assert active.version == 1
    assert registry.load_active(ModelType.CONVERSION).record.version == 1


def test_models_command_lists_versions_and_activates(capsys):
    register(roc_auc=0.70)
    register(roc_auc=0.80)
    call_command("models", "--activate", "conversion", "1")
    call_command("models")
    out = capsys.readouterr().out
    assert "conversion v1 is now active" in out
    lines = [line for line in out.splitlines() if line.startswith("* conversion")]
    assert len(lines) == 1 and " 1  " in lines[0]
    with pytest.raises(CommandError, match="no conversion version 9"):
        call_command("models", "--activate", "conversion", "9")
    with pytest.raises(CommandError, match="unknown model type"):
        call_command("models", "--activate", "nonsense", "1")


def test_artifact_whose_bytes_changed_is_refused():
    record = register(roc_auc=0.7)
    with open(record.artifact_path, "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(registry.ArtifactError, match="sha256"):
        registry.load(record)
    with pytest.raises(registry.ArtifactError):
        registry.activate(ModelType.CONVERSION, record.version)


def test_artifact_with_a_type_outside_the_allow_list_is_refused(settings):
    record = register(roc_auc=0.7)
    # Replace the file by one holding an untrusted type, with a matching sha256: only the type check stops it.
    sio.dump({"payload": fractions.Fraction(1, 3)}, record.artifact_path)
    record.artifact_sha256 = registry.sha256_of(record.artifact_path)
    record.save()
    assert "fractions.Fraction" in sio.get_untrusted_types(file=record.artifact_path)
    with pytest.raises(registry.ArtifactError, match="fractions.Fraction"):
        registry.load(record)


def test_training_twice_on_the_same_data_and_seed_gives_the_same_metrics():
    rng = np.random.default_rng(5)

    def frame(n):
        f = pd.DataFrame({c: rng.poisson(2, n).astype(float) for c in conversion.FEATURES})
        f["recency_days"] = rng.uniform(0, 30, n)
        f[conversion.LABEL] = (rng.random(n) < 1 / (1 + np.exp(-(f["conversions"] - 2 - f["recency_days"] / 15)))).astype(int)
        return f

    train, holdout = frame(600), frame(400)
    first = conversion.fit(train, holdout, random_state=3)[1]
    second = conversion.fit(train, holdout, random_state=3)[1]
    assert first == second
    assert first["roc_auc"] > 0.6
