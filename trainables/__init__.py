"""The workers: one sub-package per model family, plus ``common`` for what they share.

Nothing here imports Ray or MLflow (docs/architecture.md): a family exposes ``run(config, reporter)``.
"""
