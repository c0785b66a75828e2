"""preload, files and unknown options."""

import pytest

from agentrl.errors import AgentRLError
from agentrl.sandbox import open_sandbox


def test_preload_and_files():
    files = {"data/input.txt": "1 2 3", "raw.bin": b"\x00\x01"}
    with open_sandbox(preload=["fractions"], files=files) as sb:
        s = sb.session()
        assert s.run("import sys; 'fractions' in sys.modules").result == "True"
        assert s.run("open('data/input.txt').read()").result == "'1 2 3'"
        assert s.run("open('raw.bin', 'rb').read()").result == "b'\\x00\\x01'"


def test_a_failing_preload_is_a_clear_error():
    with pytest.raises(AgentRLError, match="no_such_module_xyz"):
        open_sandbox(preload=["no_such_module_xyz"])


def test_unknown_option_is_a_clear_error():
    with pytest.raises(AgentRLError, match="unknown sandbox option"):
        open_sandbox(memory_gb=3)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(AgentRLError, match="unknown sandbox backend"):
        open_sandbox(backend="nope")
