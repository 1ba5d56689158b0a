"""exchange.*: declare rules and errors, every type, e2e bindings, alternate exchanges."""

import pika
import pytest

from amqp_helpers import unique, peer  # noqa: F401 (fixtures)


def routed(ch, queues):
    """Bodies now ready in each queue (consumed with basic.get)."""
    out = {}
    for q in queues:
        bodies = []
        while True:
            m, _, b = ch.basic_get(q, auto_ack=True)
            if m is None:
                break
            bodies.append(b)
        out[q] = bodies
    return out


def queues(ch, n, prefix="q"):
    names = [unique(prefix) for _ in range(n)]
    for name in names:
        ch.queue_declare(name, auto_delete=False)
    return names


def cleanup(ch, names):
    for name in names:
        ch.queue_delete(name)


def test_direct_and_default_exchange(peer):
    conn = peer.connect()
    ch = conn.channel()
    a, b = queues(ch, 2)
    x = unique("direct")
    ch.exchange_declare(x, "direct", auto_delete=True)
    ch.queue_bind(a, x, "red")
    ch.queue_bind(b, x, "red")
    ch.queue_bind(b, x, "blue")
    ch.basic_publish(x, "red", b"r")
    ch.basic_publish(x, "blue", b"bl")
    ch.basic_publish(x, "green", b"g")
    ch.basic_publish("", a, b"direct-to-a")
    assert routed(ch, [a, b]) == {a: [b"r", b"direct-to-a"], b: [b"r", b"bl"]}
    cleanup(ch, [a, b])
    conn.close()


def test_fanout(peer):
    conn = peer.connect()
    ch = conn.channel()
    qs = queues(ch, 3)
    x = unique("fanout")
    ch.exchange_declare(x, "fanout", auto_delete=True)
    for q in qs:
        ch.queue_bind(q, x, "ignored")
    ch.basic_publish(x, "whatever", b"all")
    assert routed(ch, qs) == {q: [b"all"] for q in qs}
    cleanup(ch, qs)
    conn.close()


def test_topic_wildcards(peer):
    conn = peer.connect()
    ch = conn.channel()
    star, hash_, exact, mid = queues(ch, 4)
    x = unique("topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    ch.queue_bind(star, x, "stock.*.nyse")
    ch.queue_bind(hash_, x, "stock.#")
    ch.queue_bind(exact, x, "stock.ibm.nyse")
    ch.queue_bind(mid, x, "#.nyse")
    for key in ["stock.ibm.nyse", "stock.ibm", "stock", "forex.usd.nyse", "stock.a.b.nyse", ""]:
        ch.basic_publish(x, key, key.encode() or b"<empty>")
    assert routed(ch, [star, hash_, exact, mid]) == {
        star: [b"stock.ibm.nyse"],
        hash_: [b"stock.ibm.nyse", b"stock.ibm", b"stock", b"stock.a.b.nyse"],
        exact: [b"stock.ibm.nyse"],
        mid: [b"stock.ibm.nyse", b"forex.usd.nyse", b"stock.a.b.nyse"],
    }
    cleanup(ch, [star, hash_, exact, mid])
    conn.close()


@pytest.mark.parametrize("xtype", ["amq.headers", "amq.match", "custom"])
def test_headers_exchange_match_modes(peer, xtype):
    conn = peer.connect()
    ch = conn.channel()
    all_q, any_q, allx_q, anyx_q = queues(ch, 4)
    x = xtype if xtype != "custom" else unique("headers")
    if xtype == "custom":
        ch.exchange_declare(x, "headers", auto_delete=True)
    ch.queue_bind(all_q, x, "", arguments={"x-match": "all", "format": "pdf", "type": "report"})
    ch.queue_bind(any_q, x, "", arguments={"x-match": "any", "format": "pdf", "type": "report"})
    ch.queue_bind(allx_q, x, "", arguments={"x-match": "all-with-x", "x-tenant": "a", "format": "pdf"})
    ch.queue_bind(anyx_q, x, "", arguments={"x-match": "any-with-x", "x-tenant": "a"})
    msgs = [
        ({"format": "pdf", "type": "report"}, b"both"),
        ({"format": "pdf"}, b"format"),
        ({"format": "pdf", "x-tenant": "a"}, b"tenant"),
        ({"other": 1}, b"none"),
    ]
    for headers, body in msgs:
        ch.basic_publish(x, "", body, pika.BasicProperties(headers=headers))
    assert routed(ch, [all_q, any_q, allx_q, anyx_q]) == {
        all_q: [b"both"],
        any_q: [b"both", b"format", b"tenant"],
        allx_q: [b"tenant"],
        anyx_q: [b"tenant"],
    }
    cleanup(ch, [all_q, any_q, allx_q, anyx_q])
    conn.close()


def test_exchange_to_exchange_bindings(peer):
    conn = peer.connect()
    ch = conn.channel()
    [q] = queues(ch, 1)
    src, dst = unique("src"), unique("dst")
    ch.exchange_declare(src, "topic")
    ch.exchange_declare(dst, "direct")
    ch.exchange_bind(dst, src, "a.*")
    ch.exchange_bind(src, dst, "loop")  # a cycle must not loop forever
    ch.queue_bind(q, dst, "a.b")
    ch.basic_publish(src, "a.b", b"via-e2e")
    ch.basic_publish(src, "a.c", b"not-bound")
    assert routed(ch, [q]) == {q: [b"via-e2e"]}
    ch.exchange_unbind(dst, src, "a.*")
    ch.basic_publish(src, "a.b", b"after-unbind")
    assert routed(ch, [q]) == {q: []}
    ch.exchange_delete(src)
    ch.exchange_delete(dst)
    cleanup(ch, [q])
    conn.close()


def test_alternate_exchange(peer):
    conn = peer.connect()
    ch = conn.channel()
    main_q, lost_q = queues(ch, 2)
    ae, x = unique("ae"), unique("with-ae")
    ch.exchange_declare(ae, "fanout", auto_delete=True)
    ch.queue_bind(lost_q, ae, "")
    ch.exchange_declare(x, "direct", auto_delete=True, arguments={"alternate-exchange": ae})
    ch.queue_bind(main_q, x, "known")
    ch.basic_publish(x, "known", b"k")
    ch.basic_publish(x, "unknown", b"u")
    assert routed(ch, [main_q, lost_q]) == {main_q: [b"k"], lost_q: [b"u"]}
    cleanup(ch, [main_q, lost_q])
    conn.close()


def test_predeclared_exchanges_exist(peer):
    conn = peer.connect()
    ch = conn.channel()
    for name in ["amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"]:
        ch.exchange_declare(name, passive=True)
    conn.close()


def closed(peer, action):
    """Runs `action(channel)`; returns the (code, text) of the channel.close it causes."""
    conn = peer.connect()
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        action(ch)
    conn.close()
    return e.value.reply_code, e.value.reply_text


def test_declare_errors(peer):
    x = unique("typed")

    def redeclare_other_type(ch):
        ch.exchange_declare(x, "direct", auto_delete=True)
        ch.exchange_declare(x, "topic", auto_delete=True)

    code, text = closed(peer, redeclare_other_type)
    assert code == 406 and "inequivalent arg 'type'" in text
    code, text = closed(peer, lambda ch: ch.exchange_declare(unique("amq.reserved"), "direct"))
    assert code == 403
    code, _ = closed(peer, lambda ch: ch.exchange_declare("amq.mine-" + unique("x"), "direct"))
    assert code == 403
    code, text = closed(peer, lambda ch: ch.exchange_declare(unique("missing"), passive=True))
    assert code == 404 and "no exchange" in text
    code, _ = closed(peer, lambda ch: ch.exchange_delete("amq.direct"))
    assert code == 403

    def durable_mismatch(ch):
        name = unique("dur")
        ch.exchange_declare(name, "fanout", durable=False, auto_delete=True)
        ch.exchange_declare(name, "fanout", durable=True, auto_delete=True)

    code, text = closed(peer, durable_mismatch)
    assert code == 406 and "durable" in text


def test_unknown_type_is_a_503_connection_error(peer):
    conn = peer.connect()
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.exchange_declare(unique("weird"), "no-such-type")
    assert e.value.reply_code == 503


def test_delete_if_unused_and_auto_delete(peer):
    conn = peer.connect()
    ch = conn.channel()
    [q] = queues(ch, 1)
    x = unique("ifunused")
    ch.exchange_declare(x, "fanout")
    ch.queue_bind(q, x, "")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_delete(x, if_unused=True)
    assert e.value.reply_code == 406
    ch = conn.channel()
    ch.queue_unbind(q, x, "")
    ch.exchange_delete(x, if_unused=True)
    # auto-delete: goes away with its last binding.
    auto = unique("auto")
    ch.exchange_declare(auto, "fanout", auto_delete=True)
    ch.queue_bind(q, auto, "")
    ch.queue_unbind(q, auto, "")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare(auto, passive=True)
    assert e.value.reply_code == 404
    ch = conn.channel()
    ch.exchange_delete(unique("never-existed"))  # not an error
    cleanup(ch, [q])
    conn.close()


def test_internal_exchange_refuses_publishes(peer):
    conn = peer.connect()
    ch = conn.channel()
    x = unique("internal")
    ch.exchange_declare(x, "fanout", internal=True, auto_delete=True)
    ch.basic_publish(x, "", b"no")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(unique("after"))
    assert e.value.reply_code == 403
    conn.close()


def test_binding_to_missing_objects_and_default_exchange(peer):
    code, text = closed(peer, lambda ch: ch.queue_bind(unique("nq"), "amq.direct", "k"))
    assert code == 404 and "no queue" in text

    def bind_missing_exchange(ch):
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, unique("nx"), "k")

    code, text = closed(peer, bind_missing_exchange)
    assert code == 404 and "no exchange" in text

    def bind_default(ch):
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "", "k")

    code, _ = closed(peer, bind_default)
    assert code == 403

    def bad_x_match(ch):
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "amq.headers", "", arguments={"x-match": "some"})

    code, _ = closed(peer, bad_x_match)
    assert code == 406
