from pathlib import Path

import redis

from core.embedded_redis import EmbeddedRedis, celery_broker_url, socket_path_for


def test_it_starts_a_real_redis_server_and_stops_it(tmp_path):
    server = EmbeddedRedis(tmp_path / "r.sock")
    url = server.start()
    client = redis.Redis.from_url(url)
    client.set("greeting", "hello")
    assert client.get("greeting") == b"hello"
    server.stop()
    assert not (tmp_path / "r.sock").exists()


def test_it_falls_back_to_a_short_socket_path_for_deep_checkouts():
    deep = Path("/srv/" + "very-long-directory-name/" * 6)
    path = socket_path_for(deep)
    assert len(str(path)) < 100
    assert path == socket_path_for(deep), "every process must agree on the path"


def test_it_spells_unix_sockets_the_way_celery_expects():
    assert celery_broker_url("unix:///x/redis.sock") == "redis+socket:///x/redis.sock"
    assert celery_broker_url("redis://h:6379/0") == "redis://h:6379/0"
