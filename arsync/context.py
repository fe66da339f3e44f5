"""What every entry point needs, built once from settings: engine, vault, clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync import registry
from arsync.clock import Clock, SystemClock
from arsync.config import Settings
from arsync.crypto import Vault
from arsync.db import ensure_schema, make_engine
from arsync.errors import InputError
from arsync.models import Connection
from arsync.tokens import StoredTokens
from connectors.base import Connector


@dataclass
class AppContext:
    """Settings plus the long-lived objects derived from them."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.settings.sqlalchemy_url)
        ensure_schema(engine)
        return engine

    @cached_property
    def vault(self) -> Vault:
        return Vault(self.settings.require_secret_key())

    def connection(self, connection_id: int) -> Connection:
        with Session(self.engine) as s:
            conn = s.get(Connection, connection_id)
        if conn is None:
            raise InputError(f"no connection with id {connection_id}")
        return conn

    def tokens_for(self, conn: Connection) -> StoredTokens:
        if conn.credential_id is None:
            raise InputError(f"connection {conn.id} has no stored grant; reconnect it")
        return StoredTokens(self.engine, self.vault,
                            registry.oauth_client(conn.provider, self.settings, self.clock),
                            conn.credential_id, self.clock)

    def connector_for(self, conn: Connection) -> Connector:
        return registry.connector(conn.provider, self.settings, tenant_id=conn.tenant_id,
                                  tokens=self.tokens_for(conn), clock=self.clock)
