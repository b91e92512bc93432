"""What Gradio's printed tracebacks become in our log: a handler's failure keeps its traceback (one
record); an outage or an input Gradio refused is one line, as anyone could cause it at will."""

from __future__ import annotations

import logging

import gradio as gr
import gradio.queueing
import pytest

from core.shared_state import SharedStateUnavailable
from core.store_outage import StoreUnreachable
from webui.unexpected_errors import log_gradio_tracebacks


@pytest.mark.parametrize(
    ("failure", "traceback_kept"),
    [
        (RuntimeError("a bug"), True),
        (StoreUnreachable("OperationalError"), False),
        (SharedStateUnavailable("ConnectionError"), False),
        (gr.Error("not one of the choices"), False),
    ],
)
def test_gradio_printed_failures_become_one_log_record(failure, traceback_kept, caplog):
    log_gradio_tracebacks()
    with caplog.at_level(logging.WARNING, "chat.gradio"):
        try:
            raise failure
        except Exception:
            gradio.queueing.traceback.print_exc()  # what Gradio's queue does on a failed handler
    [record] = [r for r in caplog.records if r.name == "chat.gradio"]
    assert (record.exc_info is not None) == traceback_kept
