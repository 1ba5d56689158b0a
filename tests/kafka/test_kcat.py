"""kcat 1.7.1 with Debian's librdkafka 2.0.2: metadata, produce, consume.

librdkafka 2.0.2 predates the fix for tagged-field skipping (2.2.0): these tests also prove
ferrymq sends no tagged fields it need not send.
"""

import pytest

from kafka_util import kcat, module_broker, require_kcat


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    require_kcat()
    b = module_broker(tmp_path_factory, "kcat")
    yield b
    b.stop()


def test_list_metadata_names_the_broker_and_auto_created_topics(broker):
    kcat(broker, "-P", "-t", "kc-meta", input="x\n")
    out = kcat(broker, "-L")
    assert "1 brokers:" in out
    assert f"broker 0 at {broker.bootstrap} (controller)" in out
    assert 'topic "kc-meta" with 1 partitions:' in out
    assert "partition 0, leader 0, replicas: 0, isrs: 0" in out


def test_produce_then_consume_from_the_beginning(broker):
    lines = "".join(f"key{i}:value {i}\n" for i in range(200))
    kcat(broker, "-P", "-t", "kc-data", "-K:", input=lines)
    out = kcat(broker, "-C", "-t", "kc-data", "-o", "beginning", "-e", "-f", "%k|%s|%o\n")
    got = out.splitlines()
    assert got == [f"key{i}|value {i}|{i}" for i in range(200)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_each_codec_round_trips(broker, codec):
    topic = f"kc-{codec}"
    lines = "".join(f"{codec}-{i}\n" for i in range(50))
    kcat(broker, "-P", "-t", topic, "-z", codec, input=lines)
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e")
    assert out.splitlines() == [f"{codec}-{i}" for i in range(50)]


def test_consume_from_an_offset_and_a_count(broker):
    kcat(broker, "-P", "-t", "kc-offsets", input="".join(f"m{i}\n" for i in range(10)))
    out = kcat(broker, "-C", "-t", "kc-offsets", "-o", "7", "-e")
    assert out.splitlines() == ["m7", "m8", "m9"]
    out = kcat(broker, "-C", "-t", "kc-offsets", "-o", "-3", "-e")
    assert out.splitlines() == ["m7", "m8", "m9"]
