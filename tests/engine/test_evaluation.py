"""The run's own evaluation: protocols and ``--rerank``."""

import dataclasses

from sdcl_toolkit.engine import SDCLTrainer, evaluation


def test_rerank_flag_reaches_the_run_evaluation(tiny_config, monkeypatch):
    calls = []
    distance = evaluation.query_gallery_distance

    def spy(query, gallery, **kwargs):
        calls.append(kwargs.get("rerank"))
        return distance(query, gallery, **kwargs)

    monkeypatch.setattr(evaluation, "query_gallery_distance", spy)
    trainer = SDCLTrainer(dataclasses.replace(tiny_config, rerank=True, trials=1))
    reranked = trainer.evaluate()
    assert calls == [True, True]  # all-search and indoor-search of the one trial
    trainer.config = dataclasses.replace(trainer.config, rerank=False)
    plain = trainer.evaluate()
    assert calls[2:] == [False, False]
    assert reranked["all"].mean.mAP != plain["all"].mean.mAP
