"""Downloads served by our own routes (not Gradio's file cache): conversation exports and the audit CSV."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from core.history import History
from core.identity import User
from webui.admin_service import (
    AdminContext,
    AdminRefused,
    AdminService,
    AuditQuery,
    parse_date,
)


def _user(request: Request) -> User | None:
    user = request.scope.get("state", {}).get("user")
    return user if isinstance(user, User) else None


def export_router(history: History, admin: AdminService | None) -> APIRouter:
    router = APIRouter()

    @router.get("/export/{conversation_id}.{fmt}", include_in_schema=False)
    def export_conversation(conversation_id: str, fmt: str, request: Request) -> Response:
        user = _user(request)
        if user is None:
            return JSONResponse({"error": "Log in first."}, status_code=401)
        if fmt not in ("md", "json"):
            return JSONResponse({"error": "Use .md or .json."}, status_code=404)
        try:
            if fmt == "md":
                body, media = history.export_markdown(user.key, conversation_id), "text/markdown"
            else:
                body, media = history.export_json(user.key, conversation_id), "application/json"
        except LookupError:
            return JSONResponse({"error": "Conversation not found."}, status_code=404)
        filename = f"conversation-{conversation_id[:12]}.{fmt}"
        return Response(
            body,
            media_type=f"{media}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @router.get("/admin/audit.csv", include_in_schema=False)
    def export_audit(request: Request) -> Response:
        user = _user(request)
        if user is None or admin is None:
            return JSONResponse({"error": "Log in first."}, status_code=401)
        state = request.scope.get("state", {})
        ctx = AdminContext(user, state.get("client_ip"), state.get("request_id"))
        params = request.query_params
        try:
            query = AuditQuery(
                since=parse_date(params.get("since")),
                until=parse_date(params.get("until")),
                actor=params.get("actor") or None,
                type=params.get("type") or None,
                text=params.get("text") or None,
            )
        except ValueError:
            return JSONResponse({"error": "Dates must look like 2026-01-31."}, status_code=400)
        try:
            body = admin.audit_csv(ctx, query)
        except AdminRefused:
            return JSONResponse({"error": "Admins only."}, status_code=403)
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )

    return router
