"""`communecast keys list | rotate | revoke KEY_ID`: the controller's signing keys
(docs/security.md, "Key rotation and revocation").

Runs where the controller runs, with its settings (COMMUNECAST_DATA_DIR, COMMUNECAST_DATABASE_URL):
it writes the new private key under data_dir/keys/ring/ and the chain into the database; every
running replica notices within COMMUNECAST_KEYRING_POLL_S, signs with the active key and
re-publishes the chain (cc/v1/keys) and every station's desired state.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta
from pathlib import Path

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`7d`, `12h`, `30m`, `45s` or plain seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 7d, 12h, 30m, 45s)")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2) or "s"])


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from controller.core.config import Settings

    overrides: dict[str, object] = {}
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    return Settings(**overrides)  # type: ignore[arg-type]


def _open(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from communecast.private import owner_only
    from controller.db.session import Database
    from controller.services import signing_keys

    owner_only()  # the new private key is the service's alone
    settings = _settings(args)
    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as s:
        signing_keys.ensure_genesis(s, settings.signing_key_path.parent, settings.signing_key_path)
    return settings, db


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if hasattr(value, "strftime") else str(value)


def _list(args: argparse.Namespace) -> int:
    from controller.services import signing_keys

    _, db = _open(args)
    try:
        with db.session() as s:
            keys = signing_keys.listing(s)
    finally:
        db.dispose()
    print(f"{'kid':16}  {'status':8}  {'until':20}  {'follows':16}  fingerprint")
    for k in keys:
        until = k["revoked_at"] if k["status"] == "revoked" else k["retire_at"]
        follows = k["prev_kid"] or "-"
        print(f"{k['kid']:16}  {k['status']:8}  {_fmt(until):20}  {follows:16}  {k['fingerprint']}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from controller.services import signing_keys
    from protocol.signing import key_fingerprint

    settings, db = _open(args)
    overlap = args.overlap if args.overlap is not None else timedelta(seconds=settings.key_rotation_overlap_s)
    keys_dir = settings.signing_key_path.parent
    try:
        with db.session() as s:
            row, pair = signing_keys.rotate(s, keys_dir, settings.signing_key_path, overlap=overlap)
            prev, until = row.prev_kid, s.get(type(row), row.prev_kid).retire_at  # type: ignore[union-attr]
        signing_keys.publish_active_copy(settings.signing_key_path, pair)
    except signing_keys.KeyringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(f"new signing key {pair.kid} (fingerprint {key_fingerprint(pair.public)}), follows {prev}; "
          f"stations accept {prev} until {_fmt(until)}.\n"
          f"Running controllers sign with {pair.kid} within {settings.keyring_poll_s:g} s. "
          f"If {prev} leaked: `communecast keys revoke {prev}` now.\n{BACKUP_NOW}")
    return 0


BACKUP_NOW = ("Take a backup now (`communecast backup --out FILE`): a controller restored from an older "
              "backup signs with a key the stations no longer trust, and they would have to be re-enrolled.")


def _revoke(args: argparse.Namespace) -> int:
    from controller.services import signing_keys

    settings, db = _open(args)
    try:
        with db.session() as s:
            row = signing_keys.revoke(s, settings.signing_key_path.parent, settings.signing_key_path,
                                      args.kid, reason=args.reason or "")
            by = row.revoked_by
    except signing_keys.KeyringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(f"key {args.kid} revoked (signed by {by}); stations refuse it as soon as they receive the chain.\n"
          f"{BACKUP_NOW}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="the controller's signing keys: list, rotate, revoke")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    ls = keys_sub.add_parser("list", help="each key: active / overlap until / retired / revoked")
    rot = keys_sub.add_parser("rotate", help="make a new signing key, announced with the current one")
    rot.add_argument("--overlap", type=parse_duration, default=None,
                     help="how long stations still accept the current key (default "
                          "COMMUNECAST_KEY_ROTATION_OVERLAP_S, 7 days); e.g. 7d, 12h, 30m")
    rev = keys_sub.add_parser("revoke", help="revoke an older key: stations refuse it at once")
    rev.add_argument("kid", help="the key id (see `communecast keys list`)")
    rev.add_argument("--reason", default="", help="kept with the revocation (at most 200 characters)")
    for p, func in ((ls, _list), (rot, _rotate), (rev, _revoke)):
        p.add_argument("--data-dir", help="the controller's data dir (default COMMUNECAST_DATA_DIR)")
        p.set_defaults(func=func)
