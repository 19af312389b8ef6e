"""Event ingestion: validation, then storing a batch (``campaigns.services`` re-exports the public names)."""
