"""Who may call the REST APIs: the admin (Basic) or the token (Bearer), checked against the cluster database's
hashes; everyone else gets Confluence's 401."""

from __future__ import annotations

from .clusterdb import read_settings, transaction
from .credentials import authorized
from .routing import Reply, Request, compact

UNAUTHENTICATED = "Client must be authenticated as a system administrator"


def authenticated(request: Request) -> bool:
    if request.node.db_file is None or not request.authorization:
        return False
    with transaction(request.node.db_file, write=False) as conn:
        settings = read_settings(conn)
    return authorized(request.authorization, settings)


def admin_user(request: Request) -> str:
    """The user the credentials stand for (a token is the admin's)."""
    assert request.node.db_file is not None
    with transaction(request.node.db_file, write=False) as conn:
        return read_settings(conn).get("admin_user", "admin")


def unauthenticated(message: str = UNAUTHENTICATED) -> Reply:
    body = compact({"statusCode": 401, "message": message})
    return Reply(401, body, headers={"WWW-Authenticate": 'Basic realm="Confluence"'})
