"""Training on several processes under ``torchrun``: the exchange of a step's
gradients between ranks (:mod:`~embrec.distributed.exchange`), the collectives
built on it (:mod:`~embrec.distributed.collectives`), and per-rank reading of
one ratings file (:mod:`~embrec.distributed.shards` finds a rank's rows,
:mod:`~embrec.distributed.reading` validates and merges them)."""
