"""Deleting a row that facts point to (a campaign with events) in the admin: a count per kind, not every row.

Django's delete page lists each protected object with a link: for a campaign with 100,000 events that
was a 4.4 MB page, and the collector fetched every one of them first. The counts come from one query
per protecting relation, and the page still refuses the delete.
"""

from __future__ import annotations

from django.db import models


def protected_counts(objs) -> list[str]:
    """"12,345 events" for each PROTECT relation that holds rows pointing to ``objs`` (empty: nothing protects them)."""
    if not objs:
        return []
    out = []
    for relation in objs[0]._meta.related_objects:
        if relation.on_delete is not models.PROTECT or not relation.one_to_many:
            continue
        n = relation.related_model._base_manager.filter(**{f"{relation.field.name}__in": list(objs)}).count()
        if n:
            name = relation.related_model._meta.verbose_name if n == 1 else relation.related_model._meta.verbose_name_plural
            out.append(f"{n:,} {name}")
    return out


class CountProtectedOnDelete:
    """ModelAdmin mixin: the delete page (and the bulk delete action) names counts of protecting rows."""

    protected_hint = ""

    def get_deleted_objects(self, objs, request):
        objs = list(objs)
        counts = protected_counts(objs)
        if not counts:
            return super().get_deleted_objects(objs, request)
        hint = [self.protected_hint] if self.protected_hint else []
        return [str(o) for o in objs], {}, set(), counts + hint
