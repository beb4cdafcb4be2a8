"""`communecast areas import | import-villages`: the area tree from the official lists (docs/areas.md).

Run on the controller host (settings from COMMUNECAST_* env or --data-dir / --database-url):
the database is migrated first, then the province and its communes are created or updated.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _database(args: argparse.Namespace) -> Any:
    from controller.core.config import Settings
    from controller.db.session import Database

    overrides: dict[str, object] = {}
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    if args.database_url:
        overrides["database_url"] = args.database_url
    settings = Settings(**overrides)  # type: ignore[arg-type]
    db = Database(settings.resolved_database_url)
    db.migrate()
    return db


def _report(result: Any, dry_run: bool, verbose: bool) -> None:
    for line in result.changes if (verbose or dry_run) else []:
        print(f"  {line}")
    print(f"{result.province or 'villages'}: {result.created} created, {result.updated} updated, "
          f"{result.unchanged} unchanged{' (dry run: nothing written)' if dry_run else ''}")


def _run(args: argparse.Namespace, load: Callable[[Any], Any], refused: tuple[type[Exception], ...]) -> int:
    """One import in one transaction (rolled back on --dry-run); 2 with the reason on stderr."""
    db = _database(args)
    try:
        with db.session() as s:
            try:
                result = load(s)
            except refused as exc:
                print(str(exc), file=sys.stderr)
                return 2
            _report(result, args.dry_run, args.verbose)
            if args.dry_run:
                s.rollback()
    finally:
        db.dispose()
    return 0


def _import(args: argparse.Namespace) -> int:
    from controller.services import area_import

    return _run(args, lambda s: area_import.import_province(s, args.province, dry_run=args.dry_run),
                (area_import.ImportError_,))


def _import_villages(args: argparse.Namespace) -> int:
    from controller.services import area_import

    return _run(args, lambda s: area_import.import_villages(s, Path(args.file), dry_run=args.dry_run),
                (area_import.ImportError_, OSError))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    areas = sub.add_parser("areas", help="provinces, communes and villages from the official lists")
    areas_sub = areas.add_subparsers(dest="action", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dry-run", action="store_true", help="say what would change, write nothing")
        p.add_argument("--verbose", "-v", action="store_true", help="list every change")
        p.add_argument("--data-dir", help="default: COMMUNECAST_DATA_DIR")
        p.add_argument("--database-url", help="default: COMMUNECAST_DATABASE_URL or the data dir's SQLite")

    imp = areas_sub.add_parser("import", help="a province and its communes (from vietnam-provinces, former "
                                              "names from vietnamadminunits)")
    imp.add_argument("--province", required=True, help="official code (25) or name (Phú Thọ)")
    common(imp)
    imp.set_defaults(func=_import)
    vil = areas_sub.add_parser("import-villages", help="villages from a CSV: commune,name[,code]")
    vil.add_argument("file")
    common(vil)
    vil.set_defaults(func=_import_villages)
