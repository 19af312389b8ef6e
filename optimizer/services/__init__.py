"""Optimiser services (writes), one module per job. The jobs are registered in optimizer/apps.py."""
