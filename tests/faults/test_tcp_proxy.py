"""The proxy the fault tests cut: traffic flows, a cut breaks open and new connections, a restore heals."""

from __future__ import annotations

import psycopg
import pytest
import redis

from tests.faults.tcp_proxy import tcp_proxy


def test_a_cut_breaks_redis_and_a_restore_brings_it_back():
    with tcp_proxy("127.0.0.1", 6379) as proxy:
        client = redis.Redis(port=proxy.port, socket_timeout=2, socket_connect_timeout=2)
        assert client.ping()
        proxy.cut()
        with pytest.raises(redis.exceptions.ConnectionError):
            client.ping()
        proxy.restore()
        assert client.ping()  # redis-py reconnects on the next command


def test_a_cut_breaks_an_open_postgresql_connection():
    with tcp_proxy("127.0.0.1", 5432) as proxy:
        dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            proxy.cut()
            with pytest.raises(psycopg.OperationalError):
                conn.execute("select 1")
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(dsn, connect_timeout=2)
        proxy.restore()
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
