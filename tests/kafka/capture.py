"""Records the Kafka request frames a real client sends, for golden-bytes unit tests.

    python tests/kafka/capture.py --listen 127.0.0.1:19092 --out DIR --prefix kcat \
        [--upstream 127.0.0.1:9092]

Each request frame (without its 4-byte size prefix) is written to
`DIR/<prefix>-<api name>-v<version>.bin` (first occurrence of each api/version only). With
`--upstream`, the recorder is a transparent proxy in front of a broker. Start that broker with
`--kafka-advertised <the recorder's address>` so that clients, which reconnect to the address
Metadata advertises, keep going through the recorder. Without `--upstream` the recorder
answers nothing and closes after the first frame: enough for the ApiVersions request a client
opens every connection with.

The fixtures in crates/kafka/tests/fixtures were captured this way from kcat 1.7.1 (Debian's
librdkafka 2.0.2: -L, -P, -C, -G), confluent-kafka 2.16 (admin calls, an idempotent lz4
producer, a group consumer, seeks), kafka-python 3.0.12 (admin, producer, group consumer)
and aiokafka 0.14 (idempotent producer, group consumer).
"""

import argparse
import os
import socket
import struct
import threading

API_NAMES = {
    0: "produce", 1: "fetch", 2: "list-offsets", 3: "metadata", 8: "offset-commit",
    9: "offset-fetch", 10: "find-coordinator", 11: "join-group", 12: "heartbeat",
    13: "leave-group", 14: "sync-group", 15: "describe-groups", 16: "list-groups",
    18: "api-versions", 19: "create-topics", 20: "delete-topics", 21: "delete-records",
    22: "init-producer-id", 23: "offset-for-leader-epoch", 32: "describe-configs",
    33: "alter-configs", 37: "create-partitions", 42: "delete-groups",
    44: "incremental-alter-configs", 47: "offset-delete", 60: "describe-cluster",
}


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def save(args, frame):
    api, version = struct.unpack(">hh", frame[:4])
    name = f"{args.prefix}-{API_NAMES.get(api, f'api{api}')}-v{version}.bin"
    path = os.path.join(args.out, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(frame)
        print("captured", path, len(frame), "bytes", flush=True)


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(args, client):
    upstream = None
    if args.upstream:
        host, port = args.upstream.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
    while True:
        head = read_exact(client, 4)
        if head is None:
            break
        (size,) = struct.unpack(">i", head)
        frame = read_exact(client, size)
        if frame is None:
            break
        save(args, frame)
        if upstream is None:
            break
        upstream.sendall(head + frame)
    client.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--upstream")
    p.add_argument("--out", required=True)
    p.add_argument("--prefix", required=True)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    host, port = args.listen.rsplit(":", 1)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen()
    while True:
        client, _ = srv.accept()
        threading.Thread(target=serve, args=(args, client), daemon=True).start()


if __name__ == "__main__":
    main()
