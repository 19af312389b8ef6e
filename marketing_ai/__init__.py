"""marketing_ai: campaign analytics, A/B testing and behavioural optimisation."""

from .celery import app as celery_app

__all__ = ["celery_app"]
__version__ = "4.0.0"
