"""River models per task, their registry and (later) learning, evaluation and persistence."""
