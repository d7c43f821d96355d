import os
import sys

# Make `import helpers` work from any test module.
sys.path.insert(0, os.path.dirname(__file__))
# Quiet TensorFlow's start-up chatter in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
