"""Locators for the two kinds of bot message in the chat window: the assistant's replies, and our
notices (a reply stopped, failed or cut short), which are messages of their own shown as a titled box."""

from __future__ import annotations

NOTICES = "#chatbot [data-testid=bot] .thought-group"
REPLIES = "#chatbot [data-testid=bot]:not(:has(.thought-group))"
