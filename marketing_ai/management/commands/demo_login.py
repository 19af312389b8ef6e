"""Create or update the demo's ``admin`` account (superuser and marketer) and print how to log in."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from marketing_ai.api import MARKETER


class Command(BaseCommand):
    help = "Create/update the demo superuser (password from DEMO_ADMIN_PASSWORD, else generated) and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    @transaction.atomic
    def handle(self, *args, username: str, **opts) -> None:
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user, created = User.objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get_or_create(name=MARKETER)[0])
        self.stdout.write(
            self.style.SUCCESS(
                f"{'Created' if created else 'Updated'} demo login: user {username}  password {password}"
            )
        )
