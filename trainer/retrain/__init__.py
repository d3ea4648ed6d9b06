"""The retraining service behind ``ulasan trainer``: consume retrain.requests.v1 and retrain,
one run at a time.

For each request: take the PostgreSQL advisory lock (one training at a time across every
trainer process), claim the request's ``dedupe_key`` in ``retrain_runs`` (a key seen before is
a duplicate and is skipped), skip it when it judged a champion that is no longer serving
(stale), assemble the data (SmSA train + the labelled reviews in PostgreSQL minus a held-out
share chosen by a hash of the review id, so the split is fixed), continue training the
champion's own checkpoint (warm start: its weights and tokenizer, from the ``checkpoint/``
artifact of its MLflow run; from scratch, with the reason recorded, when it has none), with
the new reviews up-weighted per epoch, train/evaluate/gate/promote
through :func:`trainer.pipeline.run_training`, score champion and candidate on the held-out
reviews, publish ``ModelPromoted`` on model.updates.v1 when the gate promoted, and record the
run in ``retrain_runs`` and ``logs/retraining/<run_id>/``. The request's offset is committed
only after its run was recorded.

Modules: ``config`` (settings and the retrain's defaults), ``split`` (hold-out, selection and
base share), ``weighting`` (per-epoch sampling weights), ``warm_start`` (the champion's
checkpoint), ``store`` (run claims, records and the training lock), ``request`` (one request
end to end) and ``service`` (the Kafka loop).
"""
