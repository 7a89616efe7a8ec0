"""``python -m automl.serving.admin``: users, projects, roles and API keys of the server.

The database is ``auth.url`` of ``conf/apps/serve.yaml`` (``--db URL`` overrides it).
Every change is written to the audit log with ``--actor`` (default: the OS user).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from automl.apps.common import run_command
from automl.services.identity import ROLES, AuthStore, default_url


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m automl.serving.admin", description=__doc__)
    top.add_argument("--db", help="SQLAlchemy URL (default: auth.url of conf/apps/serve.yaml)")
    top.add_argument("--actor", default=getpass.getuser(), help="who is acting (audit log)")
    commands = top.add_subparsers(dest="command", required=True)
    user = commands.add_parser("user", help="add a user").add_subparsers(
        dest="action", required=True
    )
    user.add_parser("add").add_argument("name")
    project = commands.add_parser("project", help="add a project").add_subparsers(
        dest="action", required=True
    )
    project.add_parser("add").add_argument("name")
    grant = commands.add_parser("grant", help="give a user a role on a project")
    grant.add_argument("user")
    grant.add_argument("project")
    grant.add_argument("role", choices=ROLES)
    revoke = commands.add_parser("revoke-role", help="take a user's role on a project away")
    revoke.add_argument("user")
    revoke.add_argument("project")
    key = commands.add_parser("key", help="API keys").add_subparsers(dest="action", required=True)
    create = key.add_parser("create", help="a new key (printed once)")
    create.add_argument("user")
    create.add_argument("--label", default="")
    key.add_parser("revoke", help="revoke a key by id (or the whole key)").add_argument("key_id")
    listing = key.add_parser("list", help="keys (ids only), revoked ones too")
    listing.add_argument("--user")
    commands.add_parser("roles", help="every user's role per project")
    setup = commands.add_parser("setup", help="users, projects, roles and keys from YAML")
    setup.add_argument("file", type=Path)
    setup.add_argument("--keys-out", type=Path, help="write the new keys here (JSON, mode 600)")
    audit = commands.add_parser("audit", help="the audit log, newest first")
    audit.add_argument("--project")
    audit.add_argument("--last", type=int, default=50)
    return top


def run(args: argparse.Namespace) -> None:
    store = AuthStore(args.db or default_url())
    actor = args.actor
    if args.command == "user":
        store.add_user(args.name, actor)
    elif args.command == "project":
        store.add_project(args.name, actor)
    elif args.command == "grant":
        store.grant(args.user, args.project, args.role, actor)
    elif args.command == "revoke-role":
        store.revoke_role(args.user, args.project, actor)
    elif args.command == "key" and args.action == "create":
        print(store.create_key(args.user, actor, args.label))
    elif args.command == "key" and args.action == "revoke":
        store.revoke_key(args.key_id, actor)
    elif args.command == "key":
        print(json.dumps(store.keys(args.user), indent=2))
    elif args.command == "roles":
        print(json.dumps(store.roles(), indent=2))
    elif args.command == "setup":
        keys = store.setup(args.file, actor)
        if args.keys_out is None:
            print(json.dumps(keys, indent=2))
        else:
            fd = os.open(args.keys_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(keys, fh, indent=2)
            print(f"{len(keys)} key(s) written to {args.keys_out}")
    elif args.command == "audit":
        print(json.dumps(store.audit_log(args.project, args.last), indent=2))


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user error is one line on stderr and exit status 1."""
    return run_command(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
