import os
import sys
import tempfile

# Let tests import the shared case lists (cost_cases.py, golden/) next to them.
sys.path.insert(0, os.path.dirname(__file__))

# Hermetic: a host calibration saved in the user's cache directory must not change test results.
os.environ["PERFJAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="perfjax-test-cache-")
