import json
import os
import subprocess
import sys

from emulator.generate import Generator
from tests.helpers.generate import PERSON


def test_output_is_the_same_in_another_process() -> None:
    code = (
        "import json, sys; from emulator.generate import Generator; g = Generator(5);"
        "print(json.dumps([g.text('t', 1), g.from_schema(json.loads(sys.argv[1]), 'k')]))"
    )
    command = [sys.executable, "-c", code, json.dumps(PERSON)]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    generator = Generator(5)
    assert json.loads(output) == [generator.text("t", 1), generator.from_schema(PERSON, "k")]
