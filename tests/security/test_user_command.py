"""`ferrymq user ...` against a running broker: the real binary as a shell command changes
users, tags and permissions through the management API, and pika sees the effect over AMQP
(logins, vhost access, configure permission). Refusals exit 1 with the API's reason; an
unreachable broker exits 1 naming the URL; a usage error exits 2."""

import socket
import subprocess

import pika
import pytest
import requests

from conftest import _binary
from sec_util import add_user

TIMEOUT = 60


def ferrymq_user(broker, *args, stdin=None, url=None, admin=("guest", "guest")):
    """Runs `ferrymq user ARGS`; returns the CompletedProcess (text)."""
    cmd = [
        _binary(), "user", *args,
        "--url", url or broker.http_url,
        "--admin-user", admin[0],
        "--admin-password", admin[1],
    ]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT)


def ok(broker, *args, **kw) -> str:
    run = ferrymq_user(broker, *args, **kw)
    assert run.returncode == 0, f"{args}: exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    return run.stdout


def refused(broker, *args, **kw) -> str:
    run = ferrymq_user(broker, *args, **kw)
    assert run.returncode == 1, f"{args}: exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert run.stdout == ""
    return run.stderr


def connect(broker, user, password):
    params = pika.URLParameters(f"amqp://{user}:{password}@127.0.0.1:{broker.amqp[1]}/%2F")
    params.connection_attempts = 1
    params.socket_timeout = 10
    return pika.BlockingConnection(params)


def users(broker) -> dict:
    """{name: tags} from the table `ferrymq user list` prints."""
    lines = ok(broker, "list").splitlines()
    assert lines[0].split() == ["name", "tags"]
    rows = [line.split() for line in lines[1:]]
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def api_user(broker, name):
    return requests.get(f"{broker.http_url}/api/users/{name}", auth=("guest", "guest"), timeout=10)


def test_a_user_added_from_the_shell_logs_in_once_permitted(broker):
    ok(broker, "add", "alice", "--password", "first-pw", "--tags", "administrator,monitoring")
    assert users(broker)["alice"] == "administrator,monitoring"
    assert users(broker)["guest"] == "administrator"
    # No permissions yet: the login succeeds but vhost "/" is refused.
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        connect(broker, "alice", "first-pw")
    assert "(530)" in str(e.value) and "NOT_ALLOWED" in str(e.value)

    ok(broker, "permissions", "alice", "--vhost", "/", "--configure", ".*", "--write", ".*", "--read", ".*")
    conn = connect(broker, "alice", "first-pw")
    conn.channel().queue_declare("alice-q", auto_delete=True)
    conn.close()

    # Adding again is refused and leaves the password alone.
    assert "user_already_exists: alice" in refused(broker, "add", "alice", "--password", "other")
    connect(broker, "alice", "first-pw").close()


def test_passwd_replaces_the_password_and_keeps_the_tags(broker):
    ok(broker, "add", "bob", "--password", "old-pw", "--tags", "monitoring")
    ok(broker, "permissions", "bob", "--configure", ".*", "--write", ".*", "--read", ".*")
    connect(broker, "bob", "old-pw").close()

    ok(broker, "passwd", "bob", "--password-stdin", stdin="new pw:with@odd/chars\n")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(broker, "bob", "old-pw")
    params = pika.ConnectionParameters(
        "127.0.0.1", broker.amqp[1], "/", pika.PlainCredentials("bob", "new pw:with@odd/chars"),
        connection_attempts=1, socket_timeout=10,
    )
    pika.BlockingConnection(params).close()
    assert users(broker)["bob"] == "monitoring"

    # The new password also works as the admin credentials of the command itself (bob is no
    # administrator, so the API refuses him, but only after authenticating him).
    stderr = refused(broker, "list", admin=("bob", "new pw:with@odd/chars"))
    assert "403" in stderr and "Not administrator user" in stderr

    assert "no_such_user: nobody" in refused(broker, "passwd", "nobody", "--password", "x")


def test_tags_replace_and_clear(broker):
    ok(broker, "add", "carol", "--password", "pw")
    assert users(broker)["carol"] == ""
    ok(broker, "tags", "carol", "management", "policymaker")
    assert users(broker)["carol"] == "management,policymaker"
    assert sorted(api_user(broker, "carol").json()["tags"]) == ["management", "policymaker"]
    ok(broker, "tags", "carol")
    assert users(broker)["carol"] == ""
    # The password survives a tag change.
    ok(broker, "permissions", "carol", "--configure", ".*", "--write", ".*", "--read", ".*")
    connect(broker, "carol", "pw").close()
    # Tags on a missing user are refused, not a new passwordless user.
    assert "no_such_user: ghost" in refused(broker, "tags", "ghost", "administrator")
    assert api_user(broker, "ghost").status_code == 404


def test_permissions_and_clear_permissions_take_effect(broker):
    ok(broker, "add", "dave", "--password", "pw")
    ok(broker, "permissions", "dave", "--configure", "^dave\\.", "--write", ".*", "--read", ".*")
    conn = connect(broker, "dave", "pw")
    ch = conn.channel()
    ch.queue_declare("dave.mine", auto_delete=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("not-dave", auto_delete=True)
    assert e.value.reply_code == 403
    conn.close()
    listed = requests.get(
        f"{broker.http_url}/api/permissions/%2F/dave", auth=("guest", "guest"), timeout=10
    ).json()
    assert (listed["configure"], listed["write"], listed["read"]) == ("^dave\\.", ".*", ".*")

    ok(broker, "clear-permissions", "dave", "--vhost", "/")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        connect(broker, "dave", "pw")
    stderr = refused(broker, "clear-permissions", "dave")
    assert "dave has no permissions on vhost /" in stderr

    # Unknown vhost: the API's reason.
    stderr = refused(broker, "permissions", "dave", "--vhost", "nope", "--configure", "", "--write", "", "--read", "")
    assert "vhost_or_user_not_found" in stderr


def test_names_are_percent_encoded(broker):
    name = "ops/eu team@x"
    ok(broker, "add", name, "--password", "pw")
    assert api_user(broker, requests.utils.quote(name, safe="")).json()["name"] == name
    ok(broker, "permissions", name, "--configure", ".*", "--write", ".*", "--read", ".*")
    perms = requests.get(f"{broker.http_url}/api/permissions", auth=("guest", "guest"), timeout=10).json()
    assert any(p["user"] == name and p["vhost"] == "/" for p in perms)
    ok(broker, "delete", name)
    assert api_user(broker, requests.utils.quote(name, safe="")).status_code == 404


def test_delete_removes_the_user(broker):
    add_user(broker, "erin", "pw")
    connect(broker, "erin", "pw").close()
    ok(broker, "delete", "erin")
    assert "erin" not in users(broker)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(broker, "erin", "pw")
    assert "no_such_user: erin" in refused(broker, "delete", "erin")


def test_a_wrong_admin_password_is_refused_with_the_reason(broker):
    stderr = refused(broker, "add", "mallory", "--password", "pw", admin=("guest", "wrong"))
    assert "401" in stderr and "Login failed" in stderr
    assert api_user(broker, "mallory").status_code == 404


def test_a_non_administrator_gets_the_403_reason(broker):
    add_user(broker, "mon", "pw", tags="monitoring")
    stderr = refused(broker, "add", "mallory", "--password", "pw", admin=("mon", "pw"))
    assert "403" in stderr and "Not administrator user" in stderr
    assert api_user(broker, "mallory").status_code == 404


def test_an_unreachable_broker_names_the_url(broker):
    url = f"http://127.0.0.1:{free_port()}"
    stderr = refused(broker, "list", url=url)
    assert url in stderr and "cannot reach" in stderr


def test_usage_errors_exit_2(broker):
    for args in (["passwd", "x"], ["add", "x", "--password", "a", "--password-stdin"], ["bogus"]):
        assert ferrymq_user(broker, *args).returncode == 2, args
    run = ferrymq_user(broker, "list", url="https://127.0.0.1:1")
    assert run.returncode == 2 and "https" in run.stderr


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
