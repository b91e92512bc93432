"""The [page] settings section: how much per-tab state the chat page's Gradio layer keeps in memory."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field


class PageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A tab's server-side state unused this long is dropped (a running reply never is). The default
    # matches [session] idle_timeout_minutes: a tab idle longer has to sign in and reload anyway.
    state_ttl_minutes: float = Field(default=60.0, gt=0, le=7 * 24 * 60)
    # Tabs whose state is held at most; past it the least recently used idle one is dropped.
    # ~235 KB each (gr.render builds the page per tab): 1,000 is ~230 MB of a 2 GB container.
    max_sessions: int = Field(default=1000, ge=1)

    @property
    def state_ttl(self) -> timedelta:
        return timedelta(minutes=self.state_ttl_minutes)
