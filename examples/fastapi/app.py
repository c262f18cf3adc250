"""A FastAPI service with its own users, whose sessions live in sessiond.

The app keeps usernames and password hashes in its own SQLite table and
checks passwords itself. Once a password is right, it asks sessiond's admin
API to start a session for that user on that device, and from then on every
protected request asks sessiond whether the access token is still good.

Configuration, from the environment:

    SESSIOND_URL             sessiond's public listener (default http://localhost:8080)
    SESSIOND_ADMIN_URL       sessiond's admin listener (default http://localhost:8081)
    SESSIOND_ADMIN_KEY       an admin key from `sessiond admin-key new NAME`, or
    SESSIOND_ADMIN_KEY_FILE  a file holding it
    APP_DB                   the app's own SQLite file (default app.db)

Run it with: python3 -m uvicorn app:app --port 8000
"""

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

SESSIOND_URL = os.environ.get("SESSIOND_URL", "http://localhost:8080")
SESSIOND_ADMIN_URL = os.environ.get("SESSIOND_ADMIN_URL", "http://localhost:8081")
APP_DB = os.environ.get("APP_DB", "app.db")

log = logging.getLogger("uvicorn.error")


def read_admin_key() -> str:
    key = os.environ.get("SESSIOND_ADMIN_KEY", "")
    path = os.environ.get("SESSIOND_ADMIN_KEY_FILE", "")
    if not key and path:
        with open(path) as f:
            key = f.read().strip()
    if not key:
        raise SystemExit("set SESSIOND_ADMIN_KEY or SESSIOND_ADMIN_KEY_FILE")
    return key


# The admin key starts sessions and revokes them for any user: it stays on
# the server, in this client, and goes only to the admin listener.
admin = httpx.Client(
    base_url=SESSIOND_ADMIN_URL,
    headers={"Authorization": f"Bearer {read_admin_key()}"},
    timeout=5,
)
public = httpx.Client(base_url=SESSIOND_URL, timeout=5)

app = FastAPI(title="sessiond example: a FastAPI app with its own users")


# --- The app's own users ---------------------------------------------------

def db() -> sqlite3.Connection:
    return sqlite3.connect(APP_DB)


@app.on_event("startup")
def create_tables() -> None:
    with closing(db()) as conn, conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS users ("
            " id INTEGER PRIMARY KEY,"
            " username TEXT NOT NULL UNIQUE,"
            " salt BLOB NOT NULL,"
            " password_hash BLOB NOT NULL)"
        )


def hash_password(password: str, salt: bytes) -> bytes:
    # scrypt with the cost OWASP suggests (N=2^14, r=8, p=1): about 16 MiB
    # and tens of milliseconds per guess.
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


# Unknown usernames are checked against this, so that they take as long as
# a wrong password and do not reveal which usernames exist.
DUMMY_SALT = secrets.token_bytes(16)
DUMMY_HASH = hash_password(secrets.token_urlsafe(16), DUMMY_SALT)


def check_password(username: str, password: str) -> Optional[int]:
    """Returns the user's id when the password is right, else None."""
    with closing(db()) as conn:
        row = conn.execute(
            "SELECT id, salt, password_hash FROM users WHERE username = ?", (username,)
        ).fetchone()
    user_id, salt, want = row if row else (None, DUMMY_SALT, DUMMY_HASH)
    ok = hmac.compare_digest(hash_password(password, salt), want)
    return user_id if ok and user_id is not None else None


def set_password(user_id: int, password: str) -> None:
    salt = secrets.token_bytes(16)
    with closing(db()) as conn, conn:
        conn.execute(
            "UPDATE users SET salt = ?, password_hash = ? WHERE id = ?",
            (salt, hash_password(password, salt), user_id),
        )


def session_user_id(user_id: int) -> str:
    """The user id sessiond knows: the app's own, with a prefix."""
    return f"user:{user_id}"


# --- Talking to sessiond -----------------------------------------------------

@dataclass
class Caller:
    token: str
    user_id: int  # the app's own id
    session_id: str


def unavailable() -> HTTPException:
    # sessiond could not say whether the token is good: that is not a 401.
    return HTTPException(503, "session service unavailable", headers={"Retry-After": "1"})


def refused() -> HTTPException:
    return HTTPException(
        401, "invalid, expired or revoked token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def admin_call(method: str, path: str, **kwargs) -> dict:
    """Calls sessiond's admin API; any refusal is the app's fault, not the user's."""
    r = admin.request(method, path, **kwargs)
    if r.status_code >= 400:
        log.error("sessiond %s %s: %d %s", method, path, r.status_code, error_code(r))
        raise unavailable()
    return r.json()["data"]


def as_user(method: str, path: str, token: str) -> dict:
    """Calls sessiond's public API with the user's own access token."""
    r = public.request(method, path, headers={"Authorization": f"Bearer {token}"})
    if r.status_code == 401:
        raise refused()
    if r.status_code == 404:
        raise HTTPException(404, "no such device")
    if r.status_code == 429:
        raise HTTPException(429, "too many requests", headers={"Retry-After": r.headers.get("Retry-After", "60")})
    if r.status_code >= 400:
        log.error("sessiond %s %s: %d %s", method, path, r.status_code, error_code(r))
        raise unavailable()
    return r.json()["data"]


def error_code(r: httpx.Response) -> str:
    try:
        return r.json()["data"]["code"]
    except (ValueError, KeyError, TypeError):
        return "?"


@app.exception_handler(httpx.HTTPError)
def sessiond_unreachable(request: Request, exc: httpx.HTTPError) -> JSONResponse:
    log.error("sessiond unreachable: %r", exc)
    e = unavailable()
    return JSONResponse({"detail": e.detail}, e.status_code, headers=e.headers)


def authenticated(request: Request) -> Caller:
    """Asks sessiond, on every request, whether the bearer token is live.

    Introspection (RFC 7662) answers from the session store, so a revoked
    session is refused on the very next request, not when its token expires.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "sign in first", headers={"WWW-Authenticate": "Bearer"})
    r = admin.post("/admin/v1/introspect", data={"token": token})
    if r.status_code != 200:
        log.error("sessiond introspect: %d %s", r.status_code, error_code(r))
        raise unavailable()
    info = r.json()
    if not info.get("active"):
        raise refused()
    prefix, _, user_id = info["sub"].partition(":")
    if prefix != "user" or not user_id.isdigit():
        raise refused()  # a session this app did not start
    return Caller(token=token, user_id=int(user_id), session_id=info["sid"])


def client_ip(request: Request) -> str:
    """The client's address: uvicorn takes it from X-Forwarded-For when the
    connection comes from a proxy named by --forwarded-allow-ips."""
    host = request.client.host if request.client else None
    try:
        return str(ipaddress.ip_address(host or ""))
    except ValueError:
        return ""  # no location, rather than no session


def start_session(request: Request, user_id: int, device_name: str = "") -> dict:
    """Starts a sessiond session for this user on the device making the request."""
    body = {
        "user_id": session_user_id(user_id),
        # The end user's User-Agent and address, as this app saw them:
        # sessiond turns them into "Chrome on Windows" and "London, United Kingdom".
        "user_agent": request.headers.get("user-agent", ""),
        "ip_address": client_ip(request),
    }
    if device_name:
        body["device_name"] = device_name
    return admin_call("POST", "/admin/v1/sessions", json=body)


# --- Routes ------------------------------------------------------------------

class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)


class Login(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    device_name: str = Field("", max_length=100)


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


@app.post("/signup", status_code=201)
def signup(body: Credentials):
    salt = secrets.token_bytes(16)
    try:
        with closing(db()) as conn, conn:
            cur = conn.execute(
                "INSERT INTO users (username, salt, password_hash) VALUES (?, ?, ?)",
                (body.username, salt, hash_password(body.password, salt)),
            )
    except sqlite3.IntegrityError:
        raise HTTPException(409, "username taken")
    return {"id": session_user_id(cur.lastrowid), "username": body.username}


@app.post("/login")
def login(body: Login, request: Request):
    user_id = check_password(body.username, body.password)
    if user_id is None:
        raise HTTPException(401, "wrong username or password")
    # access_token, token_type, expires_in, refresh_token and session. The
    # client refreshes at sessiond's public POST /api/v1/auth/refresh.
    return start_session(request, user_id, body.device_name)


@app.get("/me")
def me(caller: Caller = Depends(authenticated)):
    with closing(db()) as conn:
        row = conn.execute("SELECT username FROM users WHERE id = ?", (caller.user_id,)).fetchone()
    if row is None:
        raise refused()
    return {"id": session_user_id(caller.user_id), "username": row[0], "session_id": caller.session_id}


# The user's own devices: these forward the user's token to sessiond's
# public API, which lists and revokes that user's sessions only. The admin
# key is kept for what only the app may do.

@app.get("/devices")
def devices(caller: Caller = Depends(authenticated)):
    # Each: id, device ("Chrome on Windows"), name, location, ip_address,
    # login_time, last_active, expires_at, current.
    return as_user("GET", "/api/v1/sessions", caller.token)


@app.delete("/devices/{session_id}")
def sign_out_device(session_id: str, caller: Caller = Depends(authenticated)):
    as_user("DELETE", "/api/v1/sessions/" + quote(session_id, safe=""), caller.token)
    return {"signed_out": session_id}


@app.post("/password")
def change_password(body: PasswordChange, request: Request, caller: Caller = Depends(authenticated)):
    with closing(db()) as conn:
        row = conn.execute("SELECT username FROM users WHERE id = ?", (caller.user_id,)).fetchone()
    if row is None or check_password(row[0], body.current_password) != caller.user_id:
        raise HTTPException(400, "wrong current password")
    # The user's own list starts with the current session: its name is kept.
    name = as_user("GET", "/api/v1/sessions?limit=1", caller.token)[0]["name"]
    set_password(caller.user_id, body.new_password)
    # Whoever knew the old password may hold a session: end them all,
    # this one included, since its refresh token may have leaked too...
    user = quote(session_user_id(caller.user_id), safe="")
    admin_call("DELETE", f"/admin/v1/users/{user}/sessions", json={"reason": "password_changed"})
    # ...and keep the person who just changed it signed in on this device,
    # with a new session and new tokens.
    return start_session(request, caller.user_id, name)
