"""Users, projects, roles and API keys in a database (SQLAlchemy: SQLite, PostgreSQL, ...).

A key is ``ak_<id>_<secret>``; only the SHA-256 of the whole key is stored (keys are 256
random bits, so a fast hash is safe) and the id finds its row. Each user has at most one
role per project: ``viewer`` (list, metadata, predict), ``editor`` (also feedback and
registry changes: promote, unalias, delete) or ``admin`` (also the project's audit log).
Every management action, and every registry change, is written to ``audit`` with who
made it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from automl.database import open_database
from automl.errors import AutomlError

ROLES = ("viewer", "editor", "admin")  # each includes the rights of the ones before it
MODEL_ACTIONS = ("promote", "unalias", "delete_version")  # registry changes: target = model
SITE = "*"  # the admin role on project "*" administers every project, user and key
# every action the audit log holds: management, sign-ins (the dashboard), registry changes
AUDIT_ACTIONS = (
    "add_user",
    "add_project",
    "grant",
    "revoke_role",
    "create_key",
    "revoke_key",
    "sign_in",
    *MODEL_ACTIONS,
)


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[str] = mapped_column(String(40), default=utcnow)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[str] = mapped_column(String(40), default=utcnow)


class Role(Base):
    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("user_id", "project_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[str] = mapped_column(String(40), default=utcnow)
    revoked_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


class Audit(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[str] = mapped_column(String(40), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(400))
    details: Mapped[str] = mapped_column(Text, default="{}")


@dataclass(frozen=True)
class Caller:
    """Who is acting (the owner of an API key, or a named user) and their role per project."""

    user: str
    key_id: str
    roles: dict[str, str]

    def can(self, project: str, role: str) -> bool:
        """``role`` (or more) on ``project``; a site admin (admin of ``*``) has every role."""
        have = self.roles.get(project)
        if self.roles.get(SITE) == "admin":
            return True
        return have is not None and ROLES.index(have) >= ROLES.index(role)


class AccessDenied(AutomlError):
    """An identity without the role an action needs (the same message whether the target
    exists or not)."""


def denied(user: str, role: str, what: str) -> AccessDenied:
    """The one wording of a refusal: ``no <role> access to <what> for user '<user>'``."""
    return AccessDenied(f"no {role} access to {what} for user '{user}'")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AuthStore:
    """The auth database: management actions (audited) and key checks (cached ``ttl`` s)."""

    def __init__(self, url: str, ttl: float = 5.0) -> None:
        self.engine = open_database(url)
        Base.metadata.create_all(self.engine)
        self.ttl = ttl
        self.checked: dict[str, tuple[float, Caller | None]] = {}
        self.lock = threading.Lock()

    # --- checks (the server) ---

    def remembered(self, key: str) -> tuple[bool, Caller | None]:
        """(True, the caller or None) when ``key`` was checked in the last ``ttl`` s;
        (False, None) when only the database can tell (:meth:`caller`)."""
        hit = self.checked.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def caller(self, key: str | None) -> Caller | None:
        """The caller a key belongs to, or None (unknown, malformed or revoked key)."""
        return self.cached(key, self.lookup) if key else None

    def holder(self, key_id: str) -> Caller | None:
        """The caller of the key with id ``key_id`` (a dashboard session holds the id, not
        the key), or None once it is revoked; cached like :meth:`caller`."""
        return self.cached(f"id:{key_id}", lambda _: self.key_row(key_id))  # keys start ak_

    def cached(self, name: str, find: Callable[[str], Caller | None]) -> Caller | None:
        """``find(name)``, remembered for ``ttl`` seconds."""
        known, found = self.remembered(name)
        if known:
            return found
        now = time.monotonic()
        found = find(name)
        with self.lock:
            if len(self.checked) > 10_000:
                self.checked.clear()
            self.checked[name] = (now + self.ttl, found)
        return found

    def lookup(self, key: str) -> Caller | None:
        parts = key.split("_")
        if len(parts) != 3 or parts[0] != "ak":
            return None
        return self.key_row(parts[1], digest(key))

    def key_row(self, key_id: str, key_hash: str | None = None) -> Caller | None:
        """The caller of an unrevoked key id (whose stored hash is ``key_hash``, if given)."""
        with Session(self.engine) as db:
            row = db.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
            if row is None or row.revoked_at is not None:
                return None
            if key_hash is not None and not hmac.compare_digest(row.key_hash, key_hash):
                return None
            user = db.get(User, row.user_id)
            return Caller(user.name, row.key_id, roles_of(db, row.user_id))

    def require(self, user: str, project: str, role: str) -> None:
        """``AccessDenied`` unless ``user`` has ``role`` (or more) on ``project``.

        A project this store does not manage (never added) has no roles to check: the
        registry of a machine without a server setup stays usable; its changes are
        still audited.
        """
        with Session(self.engine) as db:
            if db.scalars(select(Project).where(Project.name == project)).first() is None:
                return
            found = db.scalars(select(User).where(User.name == user)).first()
            roles = {} if found is None else roles_of(db, found.id)
        if not Caller(user, "", roles).can(project, role):
            raise denied(user, role, f"project '{project}'")

    def record(self, actor: str, action: str, target: str, **details: Any) -> None:
        """Write one action to the audit log (its own transaction)."""
        with Session(self.engine) as db, db.begin():
            self.audit(db, actor, action, target, **details)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    # --- management (the admin CLI) ---

    def audit(self, db: Session, actor: str, action: str, target: str, **details: Any) -> None:
        db.add(Audit(actor=actor, action=action, target=target, details=json.dumps(details)))

    def add_user(self, name: str, actor: str) -> None:
        with Session(self.engine) as db, db.begin():
            if db.scalars(select(User).where(User.name == name)).first() is None:
                db.add(User(name=name))
                self.audit(db, actor, "add_user", name)

    def add_project(self, name: str, actor: str) -> None:
        with Session(self.engine) as db, db.begin():
            if db.scalars(select(Project).where(Project.name == name)).first() is None:
                db.add(Project(name=name))
                self.audit(db, actor, "add_project", name)

    def grant(self, user: str, project: str, role: str, actor: str) -> None:
        """Give ``user`` ``role`` on ``project`` (replacing the role they had there)."""
        if role not in ROLES:
            raise AutomlError(f"role must be one of {list(ROLES)}, got '{role}'")
        with Session(self.engine) as db, db.begin():
            u, p = self.user_row(db, user), self.project_row(db, project)
            row = db.scalars(
                select(Role).where(Role.user_id == u.id, Role.project_id == p.id)
            ).first()
            if row is None:
                db.add(Role(user_id=u.id, project_id=p.id, role=role))
            else:
                row.role = role
            self.audit(db, actor, "grant", f"{user}@{project}", role=role)

    def revoke_role(self, user: str, project: str, actor: str) -> None:
        with Session(self.engine) as db, db.begin():
            u, p = self.user_row(db, user), self.project_row(db, project)
            query = select(Role).where(Role.user_id == u.id, Role.project_id == p.id)
            for row in db.scalars(query):
                db.delete(row)
            self.audit(db, actor, "revoke_role", f"{user}@{project}")

    def create_key(self, user: str, actor: str, label: str = "") -> str:
        """A new key for ``user``; the only time the whole key is seen."""
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32).replace("_", "-")
        key = f"ak_{key_id}_{secret}"
        with Session(self.engine) as db, db.begin():
            u = self.user_row(db, user)
            db.add(ApiKey(key_id=key_id, key_hash=digest(key), user_id=u.id, label=label))
            self.audit(db, actor, "create_key", user, key_id=key_id, label=label)
        return key

    def revoke_key(self, key_id: str, actor: str) -> None:
        """Revoke a key by its id (the part after ``ak_``) or the whole key."""
        if key_id.startswith("ak_"):
            key_id = key_id.split("_")[1]
        with Session(self.engine) as db, db.begin():
            row = db.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
            if row is None:
                raise AutomlError(f"no API key with id '{key_id}' (see: keys)")
            row.revoked_at = utcnow()
            self.audit(db, actor, "revoke_key", key_id)
        with self.lock:
            self.checked.clear()

    def setup(self, path: Path, actor: str) -> dict[str, str]:
        """Users, projects and roles from a YAML file; returns a new key per listed user.

        ``projects: [a, b]`` and ``users: {alice: {roles: {a: admin, b: viewer}, key: true}}``
        (``key`` defaults to true: each user gets one new key).
        """
        spec = yaml.safe_load(Path(path).read_text()) or {}
        users = spec.get("users") or {}
        if not isinstance(users, dict):
            raise AutomlError(f"{path}: 'users' must map user names to {{roles: ...}}")
        for project in spec.get("projects") or []:
            self.add_project(str(project), actor)
        keys = {}
        for user, opts in users.items():
            opts = opts or {}
            self.add_user(str(user), actor)
            for project, role in (opts.get("roles") or {}).items():
                self.add_project(str(project), actor)
                self.grant(str(user), str(project), str(role), actor)
            if opts.get("key", True):
                keys[str(user)] = self.create_key(str(user), actor, label=f"setup {path}")
        return keys

    def keys(self, user: str | None = None) -> list[dict[str, Any]]:
        with Session(self.engine) as db:
            query = select(ApiKey.key_id, User.name, ApiKey.label, ApiKey.created_at)
            query = query.add_columns(ApiKey.revoked_at).join(User, User.id == ApiKey.user_id)
            if user is not None:
                query = query.where(User.name == user)
            cols = ["key_id", "user", "label", "created_at", "revoked_at"]
            return [dict(zip(cols, row)) for row in db.execute(query.order_by(ApiKey.id))]

    def roles(self) -> list[dict[str, str]]:
        with Session(self.engine) as db:
            rows = db.execute(
                select(User.name, Project.name, Role.role)
                .join(Role, Role.user_id == User.id)
                .join(Project, Project.id == Role.project_id)
                .order_by(User.name, Project.name)
            )
            return [{"user": u, "project": p, "role": r} for u, p, r in rows]

    def audit_log(self, project: str | None = None, last: int = 50) -> list[dict[str, Any]]:
        """The newest ``last`` audit entries (those of ``project`` when given: the project
        itself, ``user@project`` roles and the project's models ``project.<dataset>``)."""
        with Session(self.engine) as db:
            query = select(Audit).order_by(Audit.id.desc()).limit(last)
            if project is not None:
                query = query.where(of_project(project))
            return [entry(a) for a in db.scalars(query)]

    def audit_page(
        self,
        projects: list[str] | None = None,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], int]:
        """(newest entries from ``offset``, at most ``limit``; how many match in all).

        ``projects``: only the entries of these projects (as :meth:`audit_log` tells them;
        None: every entry, an empty list: none); ``actor`` and ``action`` exact,
        ``target`` a part of the target, ``since`` an ISO date or time (entries at or
        after it)."""
        conditions = []
        if projects is not None:
            conditions.append(or_(false(), *(of_project(p) for p in projects)))
        if actor:
            conditions.append(Audit.actor == actor)
        if action:
            conditions.append(Audit.action == action)
        if target:
            conditions.append(Audit.target.contains(target, autoescape=True))
        if since:
            conditions.append(Audit.ts >= since)
        with Session(self.engine) as db:
            total = db.scalar(select(func.count(Audit.id)).where(*conditions)) or 0
            query = select(Audit).where(*conditions).order_by(Audit.id.desc())
            rows = db.scalars(query.offset(max(offset, 0)).limit(limit))
            return [entry(a) for a in rows], total

    def users(self) -> list[dict[str, Any]]:
        """Every user: name, when added, ``{project: role}`` and how many unrevoked keys."""
        with Session(self.engine) as db:
            live = (
                select(func.count(ApiKey.id))
                .where(ApiKey.user_id == User.id, ApiKey.revoked_at.is_(None))
                .scalar_subquery()
            )
            rows = db.execute(select(User.id, User.name, User.created_at, live).order_by(User.name))
            roles: dict[int, dict[str, str]] = {}
            for user_id, project, role in db.execute(
                select(Role.user_id, Project.name, Role.role)
                .join(Project, Project.id == Role.project_id)
                .order_by(Project.name)
            ):
                roles.setdefault(user_id, {})[project] = role
            return [
                {"name": name, "created_at": created, "roles": roles.get(i, {}), "keys": keys}
                for i, name, created, keys in rows
            ]

    def projects(self) -> list[dict[str, Any]]:
        """Every project: name, when added and how many users have a role on it."""
        with Session(self.engine) as db:
            members = (
                select(func.count(Role.id)).where(Role.project_id == Project.id).scalar_subquery()
            )
            rows = db.execute(
                select(Project.name, Project.created_at, members).order_by(Project.name)
            )
            return [{"name": n, "created_at": c, "members": m} for n, c, m in rows]

    def roles_on(self, projects: list[str]) -> list[dict[str, str]]:
        """The roles on ``projects`` (as :meth:`roles`: user, project, role)."""
        if not projects:
            return []
        with Session(self.engine) as db:
            rows = db.execute(
                select(User.name, Project.name, Role.role)
                .join(Role, Role.user_id == User.id)
                .join(Project, Project.id == Role.project_id)
                .where(Project.name.in_(projects))
                .order_by(Project.name, User.name)
            )
            return [{"user": u, "project": p, "role": r} for u, p, r in rows]

    @staticmethod
    def user_row(db: Session, name: str) -> User:
        return named(db, User, name, "user")

    @staticmethod
    def project_row(db: Session, name: str) -> Project:
        return named(db, Project, name, "project")


def of_project(project: str) -> ColumnElement[bool]:
    """The audit entries of ``project``: the project itself, ``user@project`` roles and
    the registry changes of its models ``project.<dataset>`` (exact, case-sensitive
    matches: LIKE is neither)."""
    role, model = f"@{project}", f"{project}."
    ending = func.substr(Audit.target, func.length(Audit.target) - len(role) + 1)
    return (
        (Audit.target == project)
        | (ending == role)
        | (Audit.action.in_(MODEL_ACTIONS) & (func.substr(Audit.target, 1, len(model)) == model))
    )


def entry(row: Audit) -> dict[str, Any]:
    """An audit row as a record (details decoded)."""
    return {
        "ts": row.ts,
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "details": json.loads(row.details),
    }


def roles_of(db: Session, user_id: int) -> dict[str, str]:
    """``{project: role}`` of one user."""
    rows = db.execute(
        select(Project.name, Role.role)
        .join(Role, Role.project_id == Project.id)
        .where(Role.user_id == user_id)
    ).all()
    return {p: r for p, r in rows}


def default_url() -> str:
    """``auth.url`` of the packaged serve config, so the CLIs and the server agree."""
    from automl.config import compose_config

    return compose_config("automl.conf.apps", "serve").auth.url


def named(db: Session, table: type, name: str, kind: str) -> Any:
    """The row of ``table`` called ``name``; a missing one says how to add it."""
    row = db.scalars(select(table).where(table.name == name)).first()
    if row is None:
        raise AutomlError(f"no {kind} '{name}' (add it first: {kind} add {name})")
    return row
