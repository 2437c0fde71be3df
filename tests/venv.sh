# venv.sh: the Python virtual environment of the tests that run the real clients (onnx's
# checker, onnxruntime, TensorBoard), sourced after `set -u` by test_export.sh and
# test_tensorboard.sh. Sets $py to its python at RUNNER_TEST_VENV (default
# ~/.cache/runner/test-venv) holding onnx, onnxruntime, numpy, pillow and tensorboard; where
# they are absent it exits 77 (skipped), unless CI=true: then it makes the environment
# (python3 -m venv, pip install from PyPI).
venv=${RUNNER_TEST_VENV:-$HOME/.cache/runner/test-venv}
venv_packages="onnx onnxruntime numpy pillow tensorboard"
if ! "$venv/bin/python" -c "import onnx, onnxruntime, numpy, PIL, tensorboard" 2>/dev/null; then
    if [ "${CI:-}" = "true" ]; then
        python3 -m venv "$venv" && "$venv/bin/pip" install -q $venv_packages || exit 1
    else
        echo "skipped: no $venv_packages in $venv (python3 -m venv $venv &&" \
             "$venv/bin/pip install $venv_packages)"
        exit 77
    fi
fi
py=$venv/bin/python
