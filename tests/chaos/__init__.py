"""A short `clickstream chaos` run with a real verdict, on the real broker and Redis."""
