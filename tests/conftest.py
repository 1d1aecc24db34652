import os
import sys

# Let tests import the shared case lists (cost_cases.py) next to them.
sys.path.insert(0, os.path.dirname(__file__))
