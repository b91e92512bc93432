"""A minimal OpenID relying party (Authlib's Starlette client) that proves the IdP harness without our app.

It registers the same routes the app must serve (tests/e2e/harness.py) and records what it saw, so the
harness test can assert on claims and back-channel logout tokens.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from authlib.integrations.starlette_client import OAuth
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.e2e.harness import BACKCHANNEL_LOGOUT_PATH, CALLBACK_PATH, POST_LOGOUT_PATH, Idp

SCOPE = "openid email profile groups"


@dataclass
class RpRecord:
    """What the relying party saw: validated ID-token claims per login, raw back-channel logout tokens."""

    logins: list[dict[str, object]] = field(default_factory=list)
    logout_tokens: list[str] = field(default_factory=list)


def create_relying_party(idp: Idp) -> tuple[Starlette, RpRecord]:
    """Build the RP app for `idp`'s registered client, with PKCE S256 and pinned iss/aud."""
    oauth = OAuth()
    client = oauth.register(
        "idp",
        client_id=idp.client.client_id,
        client_secret=idp.client.client_secret,
        server_metadata_url=idp.metadata_url,
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
    )
    claims_options = {
        "iss": {"essential": True, "value": idp.issuer},
        "aud": {"essential": True, "values": [idp.client.client_id]},
    }
    record = RpRecord()

    async def login(request: Request) -> Response:
        return await client.authorize_redirect(request, idp.client.redirect_uri)

    async def callback(request: Request) -> Response:
        token = await client.authorize_access_token(request, claims_options=claims_options)
        claims = dict(token["userinfo"])
        request.session["id_token"] = token["id_token"]
        record.logins.append(claims)
        return JSONResponse({"sub": claims["sub"], "groups": claims["groups"]})

    async def logout(request: Request) -> Response:
        id_token = request.session.pop("id_token", None)
        return await client.logout_redirect(
            request, idp.client.post_logout_redirect_uri, id_token_hint=id_token
        )

    async def home(request: Request) -> Response:
        if "state" in request.query_params:
            await client.validate_logout_response(request)
            return PlainTextResponse("signed out")
        return PlainTextResponse("signed in" if "id_token" in request.session else "anonymous")

    async def backchannel_logout(request: Request) -> Response:
        async with request.form() as form:
            record.logout_tokens.append(str(form["logout_token"]))
        return Response(status_code=200)

    app = Starlette(
        routes=[
            Route("/login", login),
            Route(CALLBACK_PATH, callback),
            Route("/logout", logout),
            Route(POST_LOGOUT_PATH, home),
            Route(BACKCHANNEL_LOGOUT_PATH, backchannel_logout, methods=["POST"]),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key=secrets.token_urlsafe(32))],
    )
    return app, record
