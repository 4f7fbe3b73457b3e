"""`python -I -m peftbench.sandbox`: a warm grading server (server.py)."""

from peftbench.sandbox.server import serve

serve()
