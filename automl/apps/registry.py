"""``python -m automl.registry``: list, show, promote, compare, delete and sign model versions.

Changes (promote, unalias, delete) are made as ``--actor`` (default: the OS user): where
the identity database (``--auth-db``, default ``auth.url`` of conf/apps/serve.yaml) manages
the model's project, the actor needs the editor or admin role there; every change is
written to its audit log (``GET /v1/projects/{project}/audit``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

import pandas as pd

from automl.apps.common import run_command
from automl.atomic import staged
from automl.bundle.registry import Registry
from automl.services.identity import AuthStore, default_url
from automl.services.registry import RegistryService

CHANGES = ("promote", "unalias", "delete")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m automl.registry", description=__doc__)
    top.add_argument(
        "--registry",
        type=Path,
        help="registry folder (default: the registry config group, outputs/registry)",
    )
    top.add_argument("--actor", default=getpass.getuser(), help="who is acting (audit log)")
    top.add_argument(
        "--auth-db", help="identity database URL (default: auth.url of conf/apps/serve.yaml)"
    )
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every model: versions, latest, aliases")
    show = commands.add_parser("show", help="every version of a model, with metrics")
    show.add_argument("name")
    promote = commands.add_parser("promote", help="point an alias at a version (moves it)")
    promote.add_argument("ref", help="the version: name/3, name@other-alias or name (latest)")
    promote.add_argument("alias", help="e.g. production, staging")
    unalias = commands.add_parser("unalias", help="remove an alias")
    unalias.add_argument("name")
    unalias.add_argument("alias")
    compare = commands.add_parser("compare", help="versions sorted by a metric, filtered, paged")
    compare.add_argument("--dataset")
    compare.add_argument("--name")
    compare.add_argument("--family", help="model family, e.g. lgbm")
    compare.add_argument("--metric", default=None, help="sort key, e.g. auc, rmse")
    compare.add_argument("--ascending", action="store_true", help="smallest first (rmse, loss)")
    compare.add_argument("--min", type=float, dest="min_value", help="keep metric >= MIN")
    compare.add_argument("--max", type=float, dest="max_value", help="keep metric <= MAX")
    compare.add_argument("--page", type=int, default=1)
    compare.add_argument("--page-size", type=int, default=20)
    compare.add_argument("--csv", type=Path, help="also export every matching row to CSV")
    delete = commands.add_parser("delete", help="delete a version and its stored bundle")
    delete.add_argument("ref", help="name/3")
    delete.add_argument("--force", action="store_true", help="even when an alias points at it")
    sign = commands.add_parser(
        "sign", help="sign versions registered before registry.signing_key was set"
    )
    sign.add_argument("name", nargs="?", help="one model (default: every model)")
    return top


def show_table(frame: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(frame.to_string(index=False) if len(frame) else "(nothing)")


def service(args: argparse.Namespace) -> RegistryService:
    """The registry of ``--registry``; with the identity store when the command changes it."""
    registry = Registry.default(args.registry)
    identity = AuthStore(args.auth_db or default_url()) if args.command in CHANGES else None
    return RegistryService(registry, identity)


def run(args: argparse.Namespace) -> None:
    models = service(args)
    if args.command == "list":
        show_table(models.table())
    elif args.command == "show":
        show_table(models.show(args.name))
    elif args.command == "promote":
        name, version = models.promote(args.ref, args.alias, args.actor)
        print(f"{name}@{args.alias} -> version {version}")
    elif args.command == "unalias":
        models.unalias(args.name, args.alias, args.actor)
        print(f"removed {args.name}@{args.alias}")
    elif args.command == "compare":
        filters = {
            "dataset": args.dataset,
            "name": args.name,
            "family": args.family,
            "metric": args.metric,
            "ascending": args.ascending,
            "min_value": args.min_value,
            "max_value": args.max_value,
        }
        page = models.compare(
            **filters, limit=args.page_size, offset=(args.page - 1) * args.page_size
        )
        show_table(page)
        print(f"page {args.page} ({len(page)} rows)")
        if args.csv:
            everything = models.compare(**filters, limit=None)
            with staged(args.csv) as tmp:
                everything.to_csv(tmp, index=False)
            print(f"exported {len(everything)} rows to {args.csv}")
    elif args.command == "delete":
        name, version = models.delete(args.ref, args.actor, force=args.force)
        print(f"deleted {name}/{version}")
    elif args.command == "sign":
        signed = models.sign(args.name)
        print(f"signed {len(signed)} version(s): {' '.join(signed) or '-'}")


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user error is one line on stderr and exit status 1."""
    return run_command(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
