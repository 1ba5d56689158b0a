"""aiokafka 0.14: producer and group consumer."""

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from kafka_util import module_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = module_broker(tmp_path_factory, "aiokafka")
    yield b
    b.stop()


def test_producer_and_group_consumer(broker):
    async def main():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True,
                                    compression_type="gzip", linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send("ak-events", key=f"k{i % 7}".encode(), value=str(i).encode())
                       for i in range(1000)]
            metadata = await asyncio.gather(*futures)
        finally:
            await producer.stop()
        assert {m.topic for m in metadata} == {"ak-events"}

        consumer = AIOKafkaConsumer("ak-events", bootstrap_servers=broker.bootstrap, group_id="ak-group",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        seen = []
        try:
            while len(seen) < 1000:
                batch = await consumer.getmany(timeout_ms=5000)
                assert batch, f"stalled after {len(seen)} records"
                for msgs in batch.values():
                    seen.extend((m.key, int(m.value)) for m in msgs)
            await consumer.commit()
        finally:
            await consumer.stop()
        assert sorted(v for _, v in seen) == list(range(1000))
        for key in {k for k, _ in seen}:
            values = [v for k, v in seen if k == key]
            assert values == sorted(values)

        again = AIOKafkaConsumer("ak-events", bootstrap_servers=broker.bootstrap, group_id="ak-group",
                                 auto_offset_reset="earliest")
        await again.start()
        try:
            assert await again.getmany(timeout_ms=1500) == {}, "resumes after the committed offsets"
        finally:
            await again.stop()

    asyncio.run(main())
