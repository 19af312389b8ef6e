"""URL lists included by marketing_ai/urls.py (see its docstring)."""

api_v1_patterns: list = []
seed_patterns: list = []
page_patterns: list = []
