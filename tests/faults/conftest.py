"""Fault tests watch the app's event loop too."""

from __future__ import annotations

from tests.event_loop_io import no_blocking_io_on_the_event_loop  # noqa: F401 - autouse
