"""``manage.py models``: list model versions and their holdout metrics; ``--activate TYPE VERSION`` rolls back."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from optimizer import registry
from optimizer.models import MLModel, ModelType


def _fmt(value) -> str:
    return "-" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


class Command(BaseCommand):
    help = "List trained model versions with their holdout metrics (active marked with *), or activate one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--type", dest="model_type", choices=ModelType.values, help="only this model type")
        parser.add_argument("--activate", nargs=2, metavar=("TYPE", "VERSION"), help="make VERSION of TYPE the active one")

    def handle(self, *args, model_type: str | None = None, activate: list[str] | None = None, **opts) -> None:
        if activate:
            kind, version = activate
            if kind not in ModelType.values:
                raise CommandError(f"unknown model type {kind!r}; choose one of {', '.join(ModelType.values)}")
            try:
                record = registry.activate(kind, int(version))
            except ValueError:
                raise CommandError(f"version must be a whole number, got {version!r}") from None
            except MLModel.DoesNotExist as exc:
                raise CommandError(str(exc)) from None
            except registry.ArtifactError as exc:
                raise CommandError(f"refusing to activate: {exc}") from None
            self.stdout.write(self.style.SUCCESS(f"{record.model_type} v{record.version} is now active"))
            return
        rows = MLModel.objects.all().order_by("model_type", "-version")
        if model_type:
            rows = rows.filter(model_type=model_type)
        if not rows.exists():
            self.stdout.write("no trained models yet: run `manage.py run_job model_retraining`")
            return
        header = f"{'':1} {'type':<15}{'version':>8}  {'algorithm':<42}{'metric':<18}{'value':>8}  {'baseline':>9}  {'trained (UTC)':<17} note"
        self.stdout.write(header)
        for r in rows:
            baseline = (r.metrics.get("heuristic_roc_auc") or r.metrics.get("population_hit_rate")
                        or r.metrics.get("popularity_ndcg_at_10") or r.metrics.get("base_rate_log_loss"))
            note = r.promotion_note.splitlines()[0] if r.promotion_note else ""
            self.stdout.write(
                f"{'*' if r.is_active else ' ':1} {r.model_type:<15}{r.version:>8}  {r.algorithm[:41]:<42}{r.primary_metric:<18}"
                f"{_fmt(r.accuracy):>8}  {_fmt(baseline):>9}  {r.last_trained:%Y-%m-%d %H:%M} {note}"
            )
