import os

# Test modules import their shared helpers as a package (`from tests import helpers`): pytest puts
# the checkout's root on sys.path, since tests/ has an __init__.py.
# Quiet TensorFlow's start-up chatter in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
