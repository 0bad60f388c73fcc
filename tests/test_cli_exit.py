"""`leadscore` leaves without tearing the interpreter down, and loses nothing by it: output is
flushed, exit handlers run, the exit code is sys.exit's, and a thread still at work is waited
for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_output_and_exit_handlers_survive_the_quick_exit(tmp_path):
    code = (
        "import atexit, sys\n"
        "from leadscore.pipeline.cli import leave\n"
        "atexit.register(lambda: open('handler-ran', 'w').write('yes'))\n"
        "sys.stdout.write('buffered, no newline'); sys.stderr.write('to stderr')\n"
        "leave(3)\n"
        "print('never')\n"
    )
    result = _python(code, tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        3,
        "buffered, no newline",
        "to stderr",
    )
    assert (tmp_path / "handler-ran").read_text() == "yes"


def test_exit_codes_are_sys_exits():
    for argument, expected in (("None", 0), ("0", 0), ("2", 2), ("'a message'", 1)):
        result = _python(
            f"from leadscore.pipeline.cli import leave\nleave({argument})\n", Path.cwd()
        )
        assert result.returncode == expected, argument
    assert "a message" in result.stderr


def test_a_thread_at_work_is_waited_for(tmp_path):
    code = (
        "import threading, time\n"
        "from leadscore.pipeline.cli import leave\n"
        "def work():\n"
        "    time.sleep(0.5); open('written', 'w').write('done')\n"
        "threading.Thread(target=work).start()\n"
        "leave(0)\n"
    )
    assert _python(code, tmp_path).returncode == 0
    assert (tmp_path / "written").read_text() == "done"


def test_a_daemon_thread_does_not_hold_the_quick_exit_back(tmp_path):
    # a refused run can leave a daemon thread waiting for a child's value (work_aside); the
    # normal exit would not wait for it either, only tear the interpreter down first
    code = (
        "import threading, time\n"
        "from leadscore.pipeline.cli import leave\n"
        "class TornDown:\n"
        "    def __del__(self, open=open):\n"
        "        open('torn-down', 'w').write('yes')\n"
        "kept = TornDown()\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "leave(2)\n"
    )
    assert _python(code, tmp_path).returncode == 2
    assert not (tmp_path / "torn-down").exists()  # left without the teardown


def test_the_command_exits_with_its_code_and_its_output(tmp_path):
    exe = str(Path(sys.executable).with_name("leadscore"))
    usage = subprocess.run([exe, "score", "--limit"], capture_output=True, text=True, cwd=tmp_path)
    assert usage.returncode == 2 and "No such option" in usage.stderr
    missing = subprocess.run(
        [exe, "score", "--data", "nowhere"], capture_output=True, text=True, cwd=tmp_path
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    helped = subprocess.run([exe, "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert helped.returncode == 0
    assert all(command in helped.stdout for command in ("train", "score", "runs", "monitor"))


def test_output_that_cannot_be_written_exits_120_as_python_does(tmp_path):
    code = "import sys\nfrom leadscore.pipeline.cli import leave\nsys.stdout.write('x')\nleave(0)\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # written at exit
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.close()  # the reader has gone before the child flushes its output
    child.wait(timeout=60)
    child.stderr.close()
    assert child.returncode == 120
