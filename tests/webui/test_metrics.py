"""Metrics through a tiny FastAPI app on a real loopback server, read back from /metrics."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from model.types import GenerationStats
from tests.live_server import live_server
from webui.metrics import Metrics, MetricsMiddleware, metrics_router


def build_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(metrics_router(metrics))

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter(["a", "b", "c"]), media_type="text/plain")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("internal detail")

    sub = FastAPI()

    @sub.get("/hello/{name}")
    def hello(name: str) -> str:
        return name

    app.mount("/sub", sub)
    return app


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def client(metrics: Metrics) -> Iterator[httpx.Client]:
    with live_server(build_app(metrics)) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


def scrape(client: httpx.Client) -> dict[str, list]:
    """Parse /metrics as Prometheus does; fails on invalid exposition text."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = text_string_to_metric_families(response.text)
    return {family.name: family.samples for family in families}


def value(samples: dict[str, list], family: str, sample: str, **labels: str) -> float:
    found = [s.value for s in samples[family] if s.name == sample and s.labels == labels]
    assert len(found) == 1, (sample, labels, samples[family])
    return found[0]


def test_requests_are_counted_by_route_template_and_status(client: httpx.Client) -> None:
    for path in ("/items/1", "/items/2", "/items/3", "/sub/hello/ann", "/items/x"):
        client.get(path)
    samples = scrape(client)
    family = "chat_http_requests"
    total = "chat_http_requests_total"
    assert value(samples, family, total, method="GET", route="/items/{item_id}", status="200") == 3
    assert value(samples, family, total, method="GET", route="/items/{item_id}", status="422") == 1
    assert value(samples, family, total, method="GET", route="/sub/hello/{name}", status="200") == 1
    assert not any("ann" in str(s.labels) for s in samples[family])
    durations = samples["chat_http_request_duration_seconds"]
    count = [
        s.value
        for s in durations
        if s.name.endswith("_count") and s.labels["route"] == "/items/{item_id}"
    ]
    assert count == [4]


def test_random_paths_and_methods_do_not_grow_label_cardinality(client: httpx.Client) -> None:
    for _ in range(100):
        client.get(f"/{uuid.uuid4().hex}")
        client.get(f"/sub/{uuid.uuid4().hex}/{uuid.uuid4().hex}")
        client.request(f"X{uuid.uuid4().hex[:8].upper()}", "/items/1")
    series = {
        (s.labels["method"], s.labels["route"], s.labels["status"])
        for s in scrape(client)["chat_http_requests"]
        if s.name == "chat_http_requests_total"
    }
    assert ("GET", "unmatched", "404") in series
    assert ("GET", "/sub/{path}", "404") in series
    assert {m for m, _, _ in series} <= {"GET", "other"}
    assert len(series) <= 4  # the two 404 kinds, the odd methods, and /metrics itself


def test_route_labels_are_capped_even_for_many_real_routes() -> None:
    metrics = Metrics(max_routes=3)
    for i in range(10):
        metrics.observe_request("GET", f"/r{i}", 200, 0.01)
    routes = {
        s.labels["route"]
        for s in metrics.requests.collect()[0].samples
        if s.name == "chat_http_requests_total"
    }
    assert routes == {"/r0", "/r1", "/r2", "other"}


def test_streaming_responses_and_failures_are_counted(
    client: httpx.Client, metrics: Metrics
) -> None:
    assert client.get("/stream").text == "abc"
    # uvicorn closes the connection after an unhandled error; keep-alive reuse would race it.
    assert client.get("/boom", headers={"Connection": "close"}).status_code == 500
    samples = scrape(client)
    total = "chat_http_requests_total"
    assert (
        value(samples, "chat_http_requests", total, method="GET", route="/stream", status="200")
        == 1
    )
    assert (
        value(samples, "chat_http_requests", total, method="GET", route="/boom", status="500") == 1
    )
    assert value(samples, "chat_errors", "chat_errors_total", kind="unhandled") == 1


def test_callback_gauges_read_live_values_and_survive_a_failing_callback(
    client: httpx.Client, metrics: Metrics
) -> None:
    depth = [3]
    metrics.track_queue_depth(lambda: depth[0])
    metrics.track_generations_in_flight(lambda: 1)

    def broken() -> int:
        raise ConnectionError("database down")

    metrics.track_active_sessions(broken)
    first = scrape(client)
    depth[0] = 7
    second = scrape(client)
    assert value(first, "chat_queue_depth", "chat_queue_depth") == 3
    assert value(second, "chat_queue_depth", "chat_queue_depth") == 7
    assert value(second, "chat_generations_in_flight", "chat_generations_in_flight") == 1
    assert math.isnan(value(second, "chat_active_sessions", "chat_active_sessions"))


def test_generations_logins_and_refusals(client: httpx.Client, metrics: Metrics) -> None:
    metrics.observe_generation(
        GenerationStats(completion_tokens=21, time_to_first_token=0.5, total_time=2.5)
    )
    metrics.observe_generation(GenerationStats(finish_reason="cancelled"))
    metrics.record_login("success")
    metrics.record_login("denied")
    for _ in range(2):
        metrics.record_refusal("rate_limited")
    samples = scrape(client)
    assert value(samples, "chat_generated_tokens", "chat_generated_tokens_total") == 21
    ttft = "chat_time_to_first_token_seconds"
    assert value(samples, ttft, f"{ttft}_count") == 1
    assert value(samples, ttft, f"{ttft}_sum") == 0.5
    assert value(samples, "chat_tokens_per_second", "chat_tokens_per_second_sum") == 10.0
    gens = "chat_generations_total"
    assert value(samples, "chat_generations", gens, finish_reason="stop") == 1
    assert value(samples, "chat_generations", gens, finish_reason="cancelled") == 1
    assert value(samples, "chat_logins", "chat_logins_total", outcome="denied") == 1
    assert value(samples, "chat_refusals", "chat_refusals_total", reason="rate_limited") == 2


def test_unbounded_reasons_collapse_into_other(metrics: Metrics) -> None:
    for i in range(50):
        metrics.record_refusal(f"reason{i}")
    reasons = {s.labels["reason"] for s in metrics.refusals.collect()[0].samples}
    assert len(reasons) == 33 and "other" in reasons


def test_openmetrics_is_served_when_asked(client: httpx.Client) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_apps_have_separate_registries_and_leave_the_global_one_alone() -> None:
    before = {m.name for m in REGISTRY.collect()}
    first, second = Metrics(), Metrics()  # a shared registry would raise "Duplicated timeseries"
    first.record_login("success")
    assert second.logins.collect()[0].samples == []
    assert {m.name for m in REGISTRY.collect()} == before
