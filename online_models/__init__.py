"""River models per task and online learning with delayed labels: pure Python, no Kafka.

- ``registry``: every model, declared in one place, and each task's champion.
- ``rules``: the rule baselines, scored and evaluated like models.
- ``anomaly``: HalfSpaceTrees anomaly detection on transactions.
- ``task_models``: all of a task's models: score, learn from training examples, prequential metrics.
- ``label_join``: the point-in-time join of labels to what the models saw when they scored.
- ``seen_examples``: the example ids learned lately, so that one the join sent twice is learned once.
- ``persistence``: signed, versioned model snapshots, and their transport in chunks.
- ``testing``: seeded feature vectors for tests.

See ``docs/models.md``.
"""
