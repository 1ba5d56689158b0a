"""The web dashboard in headless Chromium against the real ferrymq, with real pika and
confluent-kafka clients making the objects it shows.

The page polls the API every 5 s, so every check is a bounded WebDriverWait on what the page
renders (numeric cells carry their raw number in `data-value`). Screenshots go to
$TEST_FERRYMQ_ARTIFACTS/<test> (default: <tmp_path>/artifacts), printed as each test starts; a
failing test always leaves a `failure.png` there.
"""

import os
from pathlib import Path

import pika
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import Broker
from mgmt import (
    FAST_GROUPS, amqp_connect, commit, consume, drain, ferrymq_api, kafka_consumer, produce,
    publish_confirmed, tool, unique, wait_until,
)

WINDOW = (1400, 900)
PAGE_LOAD_TIMEOUT = 30
WAIT = 20  # seconds: covers two 5 s polls of the page plus a slow CI machine


def attr_sel(name: str, value: str) -> str:
    """A CSS attribute selector matching `value` exactly, whatever it contains."""
    return '[%s="%s"]' % (name, value.replace("\\", "\\\\").replace('"', '\\"'))


def row_sel(kind: str, key: str) -> str:
    """The table row the page keys by `data-<kind>` (queue "vhost/name", connection name, ...)."""
    return "tr" + attr_sel(f"data-{kind}", key)


class Dashboard:
    """One logged-in Chromium page and the few gestures the tests make on it."""

    def __init__(self, driver, base_url: str):
        self.driver, self.base_url = driver, base_url
        self.shots: Path | None = None  # where screenshots of the running test go

    # -- waiting and reading ------------------------------------------------------------------
    def wait(self, condition, message: str, timeout: float = WAIT):
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(condition, message)

    def css(self, selector: str):
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def visible(self, selector: str, message: str | None = None, timeout: float = WAIT):
        return self.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, selector)),
                         message or f"{selector} not shown", timeout)

    def gone(self, selector: str, message: str, timeout: float = WAIT):
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, selector), message, timeout)

    def cell(self, row: str, col: str):
        """A numeric cell's raw value (data-value), None while the row or cell is absent."""
        cells = self.driver.find_elements(By.CSS_SELECTOR, f'{row} td[data-col="{col}"]')
        value = cells[0].get_attribute("data-value") if cells else None
        return None if value in (None, "") else int(float(value))

    def text(self, row: str, col: str) -> str:
        return self.css(f'{row} td[data-col="{col}"]').text

    def wait_cell(self, row: str, col: str, expected: int, timeout: float = WAIT):
        self.wait(lambda d: self.cell(row, col) == expected,
                  f"{row} {col} never showed {expected}", timeout)
        return expected

    def severe(self) -> list:
        """SEVERE browser console entries since the last call."""
        return [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def assert_clean(self):
        banner = self.css("#error-banner")
        assert not banner.is_displayed(), f"error banner: {self.css('#error-text').text}"
        assert not self.severe(), "SEVERE console entries"

    # -- acting -----------------------------------------------------------------------------
    def login(self, user: str, password: str):
        self.driver.get(self.base_url + "/")
        self.visible("#login-user", "login form not shown")
        severe = self.severe()
        assert not severe, f"SEVERE console entries while loading the page: {severe}"
        self.css("#login-user").send_keys(user)
        self.css("#login-pass").send_keys(password)
        self.css("#login-submit").click()
        self.visible("#app", "app not shown after login")
        self.wait(lambda d: self.css("#last-updated").text.startswith("last updated"),
                  "the page never refreshed after login")

    def open(self, view: str, ready_selector: str):
        """Clicks the `view` tab and waits for its table."""
        self.css(f'nav a[data-view="{view}"]').click()
        self.wait(lambda d: "active" in self.css(f'nav a[data-view="{view}"]').get_attribute("class"),
                  f"tab {view} not active")
        self.visible(ready_selector, f"{view} view not built")

    def act(self, row: str, action: str):
        self.css(f'{row} button[data-action="{action}"]').click()

    def act_confirmed(self, row: str, action: str):
        """Clicks a row's action button and accepts the confirm() dialog it opens."""
        self.act(row, action)
        self.wait(EC.alert_is_present(), f"no confirm dialog for {action}").accept()

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("dashboard") / "data", env=FAST_GROUPS).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def chrome(broker):
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(arg)
    options.binary_location = tool("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit chromedriver keeps selenium-manager from trying to download one.
    driver = webdriver.Chrome(options=options, service=Service(tool("chromedriver")))
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
    try:
        page = Dashboard(driver, broker.http_url)
        yield page
    finally:
        driver.quit()


@pytest.fixture
def artifacts(tmp_path, request) -> Path:
    """This test's screenshot directory: $TEST_FERRYMQ_ARTIFACTS/<test>, else <tmp_path>/artifacts."""
    root = os.environ.get("TEST_FERRYMQ_ARTIFACTS")
    path = Path(root) / request.node.name if root else tmp_path / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(chrome, artifacts, request, capsys):
    """The shared page, with this test's screenshot directory; screenshots on failure."""
    chrome.shots = artifacts
    with capsys.disabled():
        print(f"\n[dashboard screenshots: {chrome.shots}]")
    if not chrome.driver.find_elements(By.CSS_SELECTOR, "#app:not([hidden])"):
        try:
            chrome.login("guest", "guest")
        except Exception:
            chrome.shot("failure-login")
            raise
    yield chrome
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        try:
            chrome.shot("failure")
        except WebDriverException as e:
            print(f"no failure screenshot: {e}")


def test_page_loads_and_logs_in(page):
    page.wait(lambda d: page.css('[data-stat="queues"]').get_attribute("data-value") not in (None, ""),
              "overview totals never filled in")
    assert "ferrymq" in page.css("#node-info").text
    assert page.css("#whoami").text == "guest"
    page.shot("overview")
    page.assert_clean()


def test_queue_depth_follows_pika(page, broker):
    api, queue = ferrymq_api(broker), unique("dash-depth")
    row = row_sel("queue", f"//{queue}")
    connection = amqp_connect(broker)
    try:
        connection.channel().queue_declare(queue, durable=True)
    finally:
        connection.close()
    page.open("queues", "#queues-table")
    page.visible(row, f"queue {queue} declared by pika not listed")
    page.wait_cell(row, "messages", 0)
    for expected in (5, 10):  # rises as pika publishes
        publish_confirmed(broker, queue, 5, declare=False)
        page.wait_cell(row, "messages", expected)
        assert page.cell(row, "messages_ready") == expected
    page.shot("queue-filled")
    drain(broker, queue, 4)  # falls as pika consumes (and acks)
    page.wait_cell(row, "messages", 6)
    page.shot("queue-drained-partly")

    page.act_confirmed(row, "purge")
    page.wait_cell(row, "messages", 0)
    assert page.cell(row, "messages_ready") == 0
    page.wait(lambda d: "purged" in page.css("#flash").text, "no purge confirmation")
    assert api.queue("/", queue)["messages"] == 0
    page.shot("queue-purged")
    page.assert_clean()


def test_close_connection_from_page(page, broker):
    api, name = ferrymq_api(broker), unique("dash-conn")
    connection = amqp_connect(broker, connection_name=name)
    try:
        connection.channel()
        listed = wait_until(lambda: [c for c in api.json("/api/connections")
                                     if c["client_properties"].get("connection_name") == name],
                            message=f"connection {name} not in /api/connections")
        conn_name = listed[0]["name"]
        row = row_sel("connection", conn_name)
        page.open("connections", "#connections-table")
        page.visible(row, f"pika connection {conn_name} not listed")
        assert page.text(row, "protocol") == "AMQP 0-9-1"
        assert page.text(row, "client") == "Pika Python Client Library"
        page.visible(row_sel("channel", f"{conn_name} (1)"), "its channel not listed")
        page.shot("connections")

        page.act_confirmed(row, "close")
        page.gone(row, "closed connection still listed")

        def pika_saw_close():
            try:
                connection.process_data_events(time_limit=0.1)
            except pika.exceptions.ConnectionClosedByBroker as closed:
                return closed
            return None

        closed = wait_until(pika_saw_close, timeout=10, message="pika never saw the close")
        assert closed.reply_code == 320, closed  # CONNECTION_FORCED
        assert "closed from the dashboard" in closed.reply_text, closed
        assert conn_name not in [c["name"] for c in api.json("/api/connections")]
        page.shot("connection-closed")
        page.assert_clean()
    finally:
        if connection.is_open:
            connection.close()


def test_kafka_topic_and_group_views(page, broker):
    topic, group, records, committed = unique("dash-topic"), unique("dash-group"), 6, 2
    produce(broker, topic, records)
    consumer = kafka_consumer(broker, group, topic)
    try:
        consume(consumer, records)
        commit(consumer, topic, committed)

        topic_row = row_sel("topic", topic)
        page.open("kafka/topics", "#topics-table")
        page.visible(topic_row, f"topic {topic} not listed")
        page.wait_cell(topic_row, "messages", records)
        assert page.cell(topic_row, "partitions") == 1
        page.act(topic_row, "partitions")
        partition_row = row_sel("partition", f"{topic}/0")
        page.visible(partition_row, "partition rows not shown")
        assert page.cell(partition_row, "log_end_offset") == records
        page.shot("kafka-topics")

        group_row = row_sel("group", group)
        page.open("kafka/groups", "#groups-table")
        page.visible(group_row, f"group {group} not listed")
        page.wait_cell(group_row, "lag", records - committed)
        page.wait_cell(group_row, "members", 1)
        page.act(group_row, "details")
        offset_row = row_sel("offset", f"{topic}/0")
        page.visible(offset_row, "offset rows not shown")
        assert page.cell(offset_row, "committed_offset") == committed
        assert page.cell(offset_row, "lag") == records - committed
        assert f"{topic}-0" in page.css(f'{group_row} + tr.detail td[data-col="assignments"]').text
        page.shot("kafka-groups")

        commit(consumer, topic, records)
        page.wait_cell(group_row, "lag", 0)
        page.assert_clean()
    finally:
        consumer.close()
