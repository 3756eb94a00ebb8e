# Put this folder on PYTHONPATH and every Python process started with it refuses non-local connections.
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import guard  # noqa: E402

guard.install()
