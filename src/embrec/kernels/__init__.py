"""Compiled training loops (Numba, cached on disk): per-rating updates for dot-product models.

:mod:`embrec.kernels.dot` holds the kernels, :mod:`embrec.kernels.hogwild` the
threads that run them; :class:`embrec.training.trainers.KernelTrainer` drives
them through the trainer interface ``fit`` uses. The contract tests prove each
kernel equal to the autograd reference trained at ``batch_size=1``.
"""
