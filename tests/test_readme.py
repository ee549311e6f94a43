"""The README's examples run as written (a stale example is a bug users hit first)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_primitives_example_runs_and_builds_a_valid_response():
    import h11

    written = []

    class Transport:
        def write(self, data):
            written.append(bytes(data))

    namespace = {"transport": Transport()}
    exec(compile(_python_block("## The primitives"), "README.md", "exec"), namespace)

    assert namespace["item"] == {"job": 1}
    (raw,) = written
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.receive_data(raw)
    response = client.next_event()
    assert response.status_code == 200
    assert client.next_event().data == b'{"hello":"world"}'


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"```sh\n(.*?)```", text.split("## Using the server")[0], re.S)
    assert [c.strip() for c in commands] == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install . "
        "&& fasterapi run examples.app:app",
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pip install -e '.[test]' && python -m pytest" in ci
