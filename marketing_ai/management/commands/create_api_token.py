"""Print an API token for a user (the token alone on the last line), optionally creating the user with a role."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token

from marketing_ai.api import INGEST, MARKETER, VIEWER

ROLES = (MARKETER, VIEWER, INGEST)


class Command(BaseCommand):
    help = "Print USER's API token (send it as 'Authorization: Token <token>'). The token is the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            choices=ROLES,
            help="put the user in this role's group (ingest: a service account that may only send events)",
        )
        parser.add_argument("--create", action="store_true", help="create the user (no password) if missing")
        parser.add_argument("--rotate", action="store_true", help="replace an existing token with a new one")

    @transaction.atomic
    def handle(self, *args, username: str, role: str | None, create: bool, rotate: bool, **opts) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            if not create:
                raise CommandError(f"no user {username!r}; pass --create to make one (with --role)")
            user = User.objects.create_user(username=username)  # no password: token only
            self.stderr.write(f"created user {username}")
        if role:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
            self.stderr.write(f"{username} has the role {role}")
        if rotate:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
