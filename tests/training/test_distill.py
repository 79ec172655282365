import pytest
import torch

from rci.inference.matchlm.config import MatchLMConfig
from rci.inference.matchlm.loader import load_matchlm_model
from rci.inference.matchlm.tiny import build_tiny_matchlm
from rci.training.data import DataError, PairDataset, TeacherCollate, TeacherTargets, collate_batch, unlabelled
from rci.training.distill import DistillObjective, distill_matchlite, teacher_targets
from rci.training.loop import TrainConfig
from rci.training.losses import IGNORE_INDEX, DistillationLoss, DistillConfig, embedding_distill_loss, logit_distill_loss
from rci.training.stage1 import MatchLMObjective, build_matchlite, train_matchlm, variant_config

from tests.training.synthetic_pairs import (  # noqa: F401
    single_thread,
    synthetic_dataset,
    synthetic_teacher_dataset,
    tiny_config,
)


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    torch.set_num_threads(1)
    directory = build_tiny_matchlm(tmp_path_factory.mktemp("teacher") / "tiny", MatchLMConfig.tiny(), seed=0)
    model, processor, _ = load_matchlm_model(directory)
    return model, processor


def test_teacher_stage1_reduces_loss_and_gives_targets(tiny_teacher):
    model, processor = tiny_teacher
    data = synthetic_teacher_dataset(8, seed=0)
    full = TeacherCollate(processor)([data[i] for i in range(len(data))])
    frozen_before = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}

    def loss() -> float:
        with torch.no_grad():
            return float(MatchLMObjective(model.eval())(full).total)

    before = loss()
    train_matchlm(model, processor, data, TrainConfig.matchlm(epochs=20, batch_size=4, lr=3e-3), progress=False)
    assert loss() < 0.5 * before
    for name, p in model.named_parameters():  # LoRA: the backbone itself never moves
        if name in frozen_before:
            assert torch.equal(p, frozen_before[name]), name

    targets = teacher_targets(model, processor, data, batch_size=3)
    assert targets.logits.shape == (8, 2)
    assert targets.embedding.shape == (8, model.embedding_dim)
    with torch.no_grad():
        out = model(full.inputs)
    torch.testing.assert_close(targets.logits, out.logits, atol=1e-5, rtol=1e-4)  # batching does not matter
    torch.testing.assert_close(targets.embedding, out.embedding, atol=1e-5, rtol=1e-4)
    assert not any(p.requires_grad for p in model.parameters())


def fake_teacher(n: int, labels: torch.Tensor, width: int = 12, seed: int = 0) -> TeacherTargets:
    """A confident teacher (logits +-3 by label) with fixed random pair embeddings."""
    g = torch.Generator().manual_seed(seed)
    sign = labels.float() * 2 - 1
    return TeacherTargets(logits=torch.stack([-3 * sign, 3 * sign], dim=1), embedding=torch.randn(n, width, generator=g))


def distill_terms(student, loss_fn, dataset) -> tuple[float, float]:
    batch = collate_batch([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        out = student.eval()(batch.inputs)
        emb = embedding_distill_loss(out.embedding, loss_fn.projection(batch.teacher_embedding))
        kl = logit_distill_loss(out.logits, batch.teacher_logits, 2.0)
    return float(emb), float(kl)


def test_distillation_pulls_the_student_towards_the_teacher():
    base = synthetic_dataset(8, seed=0)
    train = base.with_teacher(fake_teacher(8, torch.as_tensor(base.labels)))
    stage1 = build_matchlite(variant_config(tiny_config(), "V+A+T"), seed=0)
    stage1_weights = {k: v.clone() for k, v in stage1.state_dict().items()}
    config = DistillConfig(lam=1.5, temperature=2.0)

    torch.manual_seed(0)
    probe = DistillationLoss(config, 12, stage1.config.embedding_dim)  # P as initialised, for "before"
    emb_before, kl_before = distill_terms(stage1, probe, train)
    student, result = distill_matchlite(
        stage1, train, TrainConfig.matchlite(epochs=50, batch_size=4, lr=1e-2), config, progress=False
    )
    assert result.steps == 100
    assert {"emb", "logits", "class", "total"} <= set(result.history[0].losses)
    assert result.last_loss < 0.5 * result.first_loss
    _, kl_after = distill_terms(student, probe, train)
    assert kl_after < 0.5 * kl_before
    for name, tensor in stage1.state_dict().items():  # the stage-1 model is left as it was
        assert torch.equal(tensor, stage1_weights[name])


def test_lambda_zero_is_classification_only():
    base = synthetic_dataset(4, seed=2)
    train = base.with_teacher(fake_teacher(4, torch.as_tensor(base.labels)))
    student = build_matchlite(variant_config(tiny_config(), "V"), seed=0).eval()
    objective = DistillObjective(student, DistillationLoss(DistillConfig(lam=0.0), 12, student.config.embedding_dim))
    losses = objective(collate_batch([train[i] for i in range(4)]))
    assert losses.total.item() == pytest.approx(losses.parts["class"].item())
    assert losses.parts["emb"].item() > 0  # computed and logged all the same


def test_distillation_without_teacher_targets_is_refused():
    student = build_matchlite(variant_config(tiny_config(), "V"), seed=0)
    with pytest.raises(DataError, match="teacher"):
        distill_matchlite(student, synthetic_dataset(4), TrainConfig.matchlite(epochs=1), DistillConfig(), progress=False)


def test_unlabelled_pairs_teach_through_the_teacher_only():
    """Stage 2 on unlabelled pairs: no classification term counts them, the teacher's terms do."""
    base = synthetic_dataset(4, seed=3)
    teacher = fake_teacher(4, torch.as_tensor(base.labels))
    train = PairDataset([unlabelled(e) for e in base.examples], base.features).with_teacher(teacher)
    batch = collate_batch([train[i] for i in range(4)])
    assert batch.labels.tolist() == [IGNORE_INDEX] * 4
    assert all(v.tolist() == [IGNORE_INDEX] * 4 for v in batch.aux_labels.values())
    student = build_matchlite(variant_config(tiny_config(), "V+A+T"), seed=0).eval()
    for lam in (0.0, 1.5):
        losses = DistillObjective(student, DistillationLoss(DistillConfig(lam=lam), 12, student.config.embedding_dim))(batch)
        assert losses.parts["class"].item() == 0.0
        assert (losses.total.item() > 0) == (lam > 0)
