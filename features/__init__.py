"""Feature definitions and window maths: pure Python, no Kafka."""
