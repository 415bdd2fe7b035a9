"""Training: the one ``fit`` loop (:func:`embrec.training.fit.fit`), its trainers,
batches, optimisers and post-training diagnostics."""
