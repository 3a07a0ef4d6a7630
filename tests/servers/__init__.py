"""Small real servers that stand in for the outside systems mimctl talks to."""
