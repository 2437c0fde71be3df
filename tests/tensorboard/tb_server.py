"""tb_server.py: TensorBoard's own server for the checks of tests/test_tensorboard.sh.

    with Server(logdir, load_fast) as tb:   # load_fast: false (Python loader) or true (Rust)
        tb.get("/data/plugin/scalars/scalars?run=tensorboard&tag=lr")
        tb.post("/data/plugin/hparams/experiment", {"experimentName": ""})

The venv's `tensorboard` on 127.0.0.1 at a free port; get/post return the decoded JSON, or
None while the server is not up yet (wait_for polls until a test on the answer holds).
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


class Server:
    def __init__(self, logdir, load_fast):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        tb = os.path.join(os.path.dirname(sys.executable), "tensorboard")
        self.proc = subprocess.Popen(
            [tb, "--logdir", logdir, "--host", "127.0.0.1", "--port", str(self.port),
             f"--load_fast={load_fast}", "--reload_interval", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def _ask(self, route, body):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{route}", data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r)
        except (urllib.error.URLError, ConnectionError):
            if self.proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited {self.proc.returncode}: "
                                   f"{self.proc.stderr.read().decode()}")
            return None

    def get(self, route):
        return self._ask(route, None)

    def post(self, route, body):
        return self._ask(route, body)

    def wait_for(self, ask, ready, seconds=60):
        """ask() until ready(answer) holds (the server starts, then loads the logdir)."""
        answer = None
        end = time.time() + seconds
        while time.time() < end:
            answer = ask()
            if answer is not None and ready(answer):
                return answer
            time.sleep(0.5)
        return answer
