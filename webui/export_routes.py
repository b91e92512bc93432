"""Downloads served by our own routes (not Gradio's file cache): conversation exports and the audit CSV.

The routes are async and read SQL through core.blocking_io, in the I/O threads: a plain `def` route
would take a thread from the pool Gradio's streaming replies use.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from core.blocking_io import run_blocking
from core.history import History
from core.request_facts import CurrentUser, facts_of
from webui.admin_service import (
    AdminContext,
    AdminRefused,
    AdminService,
    AuditQuery,
    parse_date,
)


def export_router(history: History, admin: AdminService | None) -> APIRouter:
    router = APIRouter()

    @router.get("/export/{conversation_id}.{fmt}", include_in_schema=False)
    async def export_conversation(conversation_id: str, fmt: str, user: CurrentUser) -> Response:
        if fmt not in ("md", "json"):
            return JSONResponse({"error": "Use .md or .json."}, status_code=404)
        export, media = (
            (history.export_markdown, "text/markdown")
            if fmt == "md"
            else (history.export_json, "application/json")
        )
        try:
            body = await run_blocking(export, user.key, conversation_id)
        except LookupError:
            return JSONResponse({"error": "Conversation not found."}, status_code=404)
        filename = f"conversation-{conversation_id[:12]}.{fmt}"
        return Response(
            body,
            media_type=f"{media}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @router.get("/admin/audit.csv", include_in_schema=False)
    async def export_audit(request: Request, user: CurrentUser) -> Response:
        if admin is None:
            return JSONResponse({"error": "Log in first."}, status_code=401)
        facts = facts_of(request)
        ctx = AdminContext(user, facts.client_ip, facts.request_id)
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
            body = await run_blocking(admin.audit_csv, ctx, query)
        except AdminRefused:
            return JSONResponse({"error": "Admins only."}, status_code=403)
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )

    return router
