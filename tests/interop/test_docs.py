"""docs/interop.md's examples run as written: each ```python block of its Examples section
runs (in its own interpreter, in order) against a fresh broker, with `localhost:5672` and
`localhost:9092` pointed at it, and every `print(...)  # expected` prints what the comment
says."""

import re
import subprocess
import sys

from conftest import ROOT

DOC = ROOT / "docs" / "interop.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
EXPECT = re.compile(r"^\s*print\(.*\)  # (.*)$")


def examples():
    text = DOC.read_text()
    return BLOCK.findall(text[text.index("## Examples"):])


def test_the_examples_run_and_print_what_they_say(make_broker):
    broker = make_broker()
    blocks = examples()
    assert len(blocks) == 4
    for block in blocks:
        code = block.replace('"localhost", 5672', f'"127.0.0.1", {broker.amqp[1]}')
        code = code.replace('"localhost:9092"', f'"{broker.bootstrap}"')
        expected = [m.group(1) for m in map(EXPECT.match, block.splitlines()) if m]
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        )
        assert run.returncode == 0, f"{block}\n{run.stderr}"
        assert run.stdout.splitlines() == expected, block
