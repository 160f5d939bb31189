"""Operator commands: ``python -m services.cli COMMAND``.

The contract scripts rely on: ``create-tenant`` and ``create-user`` print the new id
alone on the last line; bad input prints one clear line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy.exc

from services import accounts, config, db, key_rotation, migrate, security, seed
from services.errors import DomainError
from services.models import Role
from services.pbx import retention

EXIT_USAGE = 2
EXIT_FAILURE = 1


class UsageError(Exception):
    """Operator input the command cannot act on; printed without a traceback."""


def _cmd_migrate(args: argparse.Namespace) -> None:
    migrate.upgrade()
    print("database is at the newest schema")


def _cmd_create_tenant(args: argparse.Namespace) -> None:
    with db.session_scope() as session:
        tenant = accounts.create_tenant(session=session, name=args.name, region=args.region, timezone=args.timezone)
    print(f"created tenant '{tenant.name}' (slug {tenant.slug}, region {tenant.region}, {tenant.timezone})")
    print(tenant.id)


def _cmd_create_user(args: argparse.Namespace) -> None:
    with db.session_scope() as session:
        user = accounts.create_user(
            session=session,
            tenant_id=args.tenant_id,
            email=args.email,
            password=args.password,
            role=Role(args.role),
            full_name=args.name,
        )
    print(f"created {user.role.value} {user.email} in tenant {args.tenant_id}")
    print(user.id)


def _cmd_seed_demo(args: argparse.Namespace) -> None:
    if config.is_production():
        raise UsageError("seed-demo creates accounts with a published password; it is refused when WATHEEQ_ENV=production")
    with db.session_scope() as session:
        if args.if_empty and seed.has_tenants(session=session):
            print("the database already has tenants; nothing seeded")
            return
        report = seed.seed_demo(
            session=session,
            calls=args.calls,
            tenants=args.tenants,
            clients_per_tenant=args.clients_per_tenant,
        )
    print(
        f"seeded {len(report.tenants)} tenant(s), {report.clients} clients, {report.cases} cases, "
        f"{report.calls} calls in {report.seconds:.1f} s"
    )
    print(f"demo logins (password: {report.password}):")
    for login in report.logins:
        ext = f"  extension {login.extension}" if login.extension else ""
        print(f"  {login.tenant:<30} {login.role.value:<8} {login.email}{ext}")
    # Shown this once (they are stored encrypted): a desk phone or sipp needs them; the
    # browser softphone fetches its own.
    print("SIP passwords of the demo extensions (random; shown only now):")
    for login in report.logins:
        if login.extension:
            print(f"  {login.tenant:<30} {login.extension:<6} {login.email:<30} {login.sip_password}")


def _cmd_rotate_key(args: argparse.Namespace) -> None:
    env_path = Path(args.env_file) if args.env_file else config.env_file()
    in_use = config.get(key_rotation.CURRENT_KEY_VAR)
    if not in_use:
        raise UsageError(f"{key_rotation.CURRENT_KEY_VAR} is not set; there is no key to rotate")
    security.current_key()
    stored = key_rotation.read_env_file(env_path)
    if stored.get(key_rotation.CURRENT_KEY_VAR) != in_use:
        # Another process started with the same environment would keep the old key as
        # current and could not read what is encrypted under the new one.
        raise UsageError(
            f"the key in use does not come from {env_path}; rotate it where {key_rotation.CURRENT_KEY_VAR} is set"
        )
    new_key = security.generate_key()
    previous = key_rotation.rotated_previous_keys(in_use, config.get(key_rotation.PREVIOUS_KEYS_VAR))
    # The env file first: with the old key among the previous ones, every ciphertext
    # still decrypts whether or not the database step below completes.
    key_rotation.write_env_keys(env_path, current=new_key, previous=previous)
    with db.session_scope() as session:
        counts = key_rotation.reencrypt_secrets(session=session, new_key=new_key)
    total = sum(counts.values())
    print(f"re-encrypted {total} secret(s) under key {security.parse_key(new_key).kid}: "
          + ", ".join(f"{label} {n}" for label, n in counts.items()))
    with db.session_scope() as session:
        files = key_rotation.reencrypt_files(session=session, new_key=new_key)
    print(f"re-encrypted {sum(files.values())} stored file(s): " + ", ".join(f"{label} {n}" for label, n in files.items()))
    print(f"{env_path} now holds the new key; the old one stays in {key_rotation.PREVIOUS_KEYS_VAR}. "
          "Restart the app and the sidecar to encrypt with the new key.")


def _cmd_purge_recordings(args: argparse.Namespace) -> None:
    purged = retention.purge_all_firms(session_factory=db.session_scope)
    print(f"deleted {sum(purged.values())} recording(s) past their firm's retention period in {len(purged)} firm(s)"
          " (recordings of cases on legal hold are kept)")
    for tenant_id, n in sorted(purged.items()):
        print(f"  tenant {tenant_id}: {n}")


def _role(value: str) -> str:
    value = value.strip().upper()
    if value not in Role.__members__:
        raise argparse.ArgumentTypeError("must be one of " + ", ".join(Role.__members__))
    return value


def _count(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError("cannot be negative")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.cli", description="Watheeq operator commands.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="bring the database to the newest schema")
    p.set_defaults(func=_cmd_migrate)

    p = sub.add_parser("create-tenant", help="create a firm; prints its id on the last line")
    p.add_argument("--name", required=True)
    p.add_argument("--region", default="SA", help="default phone region (ISO code), default SA")
    p.add_argument("--timezone", default="Asia/Riyadh")
    p.set_defaults(func=_cmd_create_tenant)

    p = sub.add_parser("create-user", help="create a user of a firm; prints its id on the last line")
    p.add_argument("--tenant-id", required=True, type=_count)
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--role", required=True, type=_role, metavar="OWNER|ADMIN|MANAGER|AGENT")
    p.add_argument("--name", default="", help="full name")
    p.set_defaults(func=_cmd_create_user)

    p = sub.add_parser("seed-demo", help="demo firms, users, clients, extensions and call history")
    p.add_argument("--calls", type=_count, default=500, help="calls in total, shared between the tenants")
    p.add_argument("--tenants", type=_count, default=1)
    p.add_argument("--clients-per-tenant", type=_count, default=80)
    p.add_argument("--if-empty", action="store_true", help="do nothing when a tenant already exists")
    p.set_defaults(func=_cmd_seed_demo)

    p = sub.add_parser("rotate-key", help="new secret key; re-encrypts every stored secret")
    p.add_argument("--env-file", help="env file holding the key (default: WATHEEQ_ENV_FILE or ./.env)")
    p.set_defaults(func=_cmd_rotate_key)

    p = sub.add_parser("purge-recordings", help="delete recordings past each firm's retention period (the daily job, run now)")
    p.set_defaults(func=_cmd_purge_recordings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DomainError as exc:
        where = f" ({exc.field})" if exc.field else ""
        print(f"error{where}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, security.SecretKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except key_rotation.RotationError as exc:
        print(f"error: {exc}; no secret in the database was changed, and the old key stays readable "
              f"from {key_rotation.PREVIOUS_KEYS_VAR}", file=sys.stderr)
        return EXIT_FAILURE
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError) as exc:
        # No database, no server or no tables yet (PostgreSQL: 42P01 undefined table):
        # say so instead of a driver traceback. Any other programming error is a bug.
        if isinstance(exc, sqlalchemy.exc.ProgrammingError) and getattr(exc.orig, "sqlstate", None) != "42P01":
            raise
        reason = str(exc.orig).splitlines()[0] if exc.orig else "the database is not reachable"
        print(f"error: database: {reason} (has `migrate` been run?)", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
