"""The model registry: versioned artifacts in skops files, their sha256 and holdout metrics in ``ml_models``.

- ``register`` saves a trained artifact as the next version of its type and decides promotion:
  the new version becomes active (the champion) only if its primary holdout metric is not worse
  than the active version's by more than ``PROMOTION_TOLERANCE`` (setting
  ``MODEL_PROMOTION_TOLERANCE``, absolute, default 0.01); otherwise it is kept with
  ``is_active=False`` and the reason in ``promotion_note``.
- ``load`` re-reads an artifact only if the file's sha256 matches the stored one, and only if
  every type skops reports as untrusted is on the explicit ``ALLOWED_TYPES`` list (skops is not
  pickle: it refuses to build any type it is not told to trust).
- ``activate(model_type, version)`` makes an older version the champion again (rollback).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from optimizer.models import MLModel, ModelType

# skops is imported inside the functions that use it: Django's start-up imports this module (the job
# registry), and loading it there cost every process ~0.5 s (tests/platform/test_startup.py).

# Primary holdout metric per model type, and whether larger is better.
PRIMARY_METRIC: dict[str, tuple[str, bool]] = {
    ModelType.CONVERSION: ("roc_auc", True),
    ModelType.ENGAGEMENT: ("roc_auc", True),
    ModelType.SEND_TIME: ("holdout_hit_rate", True),
    ModelType.AFFINITY: ("ndcg_at_10", True),
    ModelType.OFFER_RESPONSE: ("holdout_log_loss", False),
}
DEFAULT_TOLERANCE = 0.01

# The only non-default types an artifact may contain (skops trusts numpy arrays, builtins and most
# scikit-learn estimators by default; these are the extra ones our estimators are made of).
ALLOWED_TYPES = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.Interval",
        "sklearn.tree._tree.Tree",
        "numpy.dtype",
    }
)


class ArtifactError(Exception):
    """An artifact that must not be loaded: missing, altered (sha256), or holding untrusted types."""


@dataclass(frozen=True)
class Loaded:
    record: MLModel | None  # None: an artifact given by the caller (a version under evaluation), not a registry row
    artifact: dict[str, Any]


def tolerance() -> float:
    return float(getattr(settings, "MODEL_PROMOTION_TOLERANCE", DEFAULT_TOLERANCE))


def artifact_dir() -> Path:
    return Path(settings.MODEL_ARTIFACT_DIR)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _metric(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def promotion_decision(model_type: str, new_metrics: dict[str, Any], active: MLModel | None) -> tuple[bool, str]:
    """(promote?, reason). Pure given its inputs, so it is easy to test on its own."""
    name, higher_is_better = PRIMARY_METRIC[model_type]
    new = _metric(new_metrics, name)
    if new is None:
        return False, f"not promoted: no holdout {name} (holdout too small or single-class)"
    if active is None:
        return True, f"promoted: first version of {model_type} ({name}={new:.4f})"
    old = _metric(active.metrics or {}, name)
    if old is None:
        return True, f"promoted: active v{active.version} has no {name}"
    tol = tolerance()
    worse_by = (old - new) if higher_is_better else (new - old)
    if worse_by > tol:
        return False, (
            f"not promoted: holdout {name} {new:.4f} is worse than active v{active.version}'s {old:.4f} "
            f"by {worse_by:.4f} (> tolerance {tol})"
        )
    return True, f"promoted: holdout {name} {new:.4f} vs active v{active.version}'s {old:.4f} (tolerance {tol})"


def _json_safe(value: Any) -> Any:
    """Metrics as plain JSON (numpy scalars to floats, NaN to None)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def register(
    model_type: str,
    artifact: dict[str, Any],
    metrics: dict[str, Any],
    *,
    algorithm: str = "",
    features: list[str] | None = None,
    params: dict[str, Any] | None = None,
    train_start=None,
    train_end=None,
    train_rows: int = 0,
    holdout_rows: int = 0,
) -> MLModel:
    """Save ``artifact`` as the next version of ``model_type`` and apply the promotion rule."""
    if model_type not in PRIMARY_METRIC:
        raise ValueError(f"unknown model type {model_type!r}; known: {', '.join(PRIMARY_METRIC)}")
    metrics = _json_safe(metrics)
    name, _ = PRIMARY_METRIC[model_type]
    folder = artifact_dir() / model_type
    folder.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):  # a concurrent trainer may take the same version number: retry with the next
        try:
            with transaction.atomic():
                last = MLModel.objects.filter(model_type=model_type).aggregate(v=Max("version"))["v"]
                version = (last or 0) + 1
                path = folder / f"v{version}.skops"
                import skops.io as sio

                sio.dump(artifact, path)
                active = MLModel.objects.select_for_update().filter(model_type=model_type, is_active=True).first()
                promote, note = promotion_decision(model_type, metrics, active)
                if promote and active is not None:
                    MLModel.objects.filter(pk=active.pk).update(is_active=False)
                return MLModel.objects.create(
                    model_type=model_type,
                    version=version,
                    algorithm=algorithm or str(metrics.get("algorithm", "")),
                    metrics=metrics,
                    primary_metric=name,
                    accuracy=_metric(metrics, name),
                    train_start=train_start,
                    train_end=train_end,
                    train_rows=int(train_rows),
                    holdout_rows=int(holdout_rows),
                    features=list(features or []),
                    params=_json_safe(params or {}),
                    artifact_path=str(path),
                    artifact_sha256=sha256_of(path),
                    is_active=promote,
                    promotion_note=note,
                    last_trained=timezone.now(),
                )
        except IntegrityError:
            continue
    raise RuntimeError(f"could not register a new {model_type} version (concurrent training?)")


def load(record: MLModel) -> dict[str, Any]:
    """The artifact of ``record``, after checking its sha256 and its types."""
    path = Path(record.artifact_path)
    if not path.exists():
        raise ArtifactError(f"{record}: artifact {path} is missing")
    actual = sha256_of(path)
    if actual != record.artifact_sha256:
        raise ArtifactError(f"{record}: artifact {path} has sha256 {actual}, expected {record.artifact_sha256}; refusing to load")
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise ArtifactError(f"{record}: artifact {path} holds types that are not on the allow-list: {', '.join(refused)}")
    return sio.load(path, trusted=untrusted)


class ArtifactCache:
    """The artifacts this process loaded last, by (path, sha256): at most ``size`` of them (they can be
    large; ``MODEL_ARTIFACT_CACHE_SIZE``). The optimizer app holds one (``artifact_cache()``); a plain
    object, not Django's cache framework, which would pickle the arrays on every read."""

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self._items: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def get(self, key: tuple[str, str], load: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        artifact = load()
        if self.size:
            self._items[key] = artifact
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return artifact

    def clear(self) -> None:
        self._items.clear()


def artifact_cache() -> ArtifactCache:
    from django.apps import apps

    from optimizer.apps import OptimizerConfig

    return cast(OptimizerConfig, apps.get_app_config("optimizer")).artifact_cache


def load_active(model_type: str) -> Loaded | None:
    """The active version of ``model_type`` and its artifact, or None if none is trained yet.

    Cached per (path, sha256), so a job or request that loads the same champion twice reads it once.
    """
    record = MLModel.objects.filter(model_type=model_type, is_active=True).first()
    if record is None:
        return None
    return Loaded(record=record, artifact=load_cached(record))


def load_cached(record: MLModel) -> dict[str, Any]:
    """``load(record)`` through this process's cache: a fan-out part loads the version its run recorded,
    active or not by now, and a helper doing several parts of one run reads it once."""
    return artifact_cache().get((record.artifact_path, record.artifact_sha256), lambda: load(record))


def activate(model_type: str, version: int) -> MLModel:
    """Make ``version`` the active one of ``model_type`` (a rollback or roll-forward)."""
    with transaction.atomic():
        try:
            target = MLModel.objects.select_for_update().get(model_type=model_type, version=version)
        except MLModel.DoesNotExist:
            known = list(MLModel.objects.filter(model_type=model_type).values_list("version", flat=True))
            raise MLModel.DoesNotExist(f"no {model_type} version {version}; known versions: {known or 'none'}") from None
        load(target)  # never activate an artifact we would refuse to load
        MLModel.objects.filter(model_type=model_type, is_active=True).exclude(pk=target.pk).update(is_active=False)
        target.is_active = True
        target.promotion_note = (target.promotion_note + f"\nactivated by hand at {timezone.now():%Y-%m-%d %H:%M} UTC").strip()
        target.save(update_fields=["is_active", "promotion_note"])
    return target
