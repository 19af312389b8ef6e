from dataclasses import dataclass

from django.apps import AppConfig


@dataclass
class DuplicateHint:
    """Did this process's last ingestion batch meet event_ids stored already? A hint for the next batch
    only (campaigns.ingest.store: look the ids up first, or go straight to the COPY)."""

    expected: bool = False


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns and events"

    def ready(self) -> None:
        self.duplicate_hint = DuplicateHint()
