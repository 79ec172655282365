import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rci.training.losses import (
    IGNORE_INDEX,
    DistillationLoss,
    DistillConfig,
    TeacherProjection,
    embedding_distill_loss,
    logit_distill_loss,
    masked_cross_entropy,
    multitask_loss,
)


def manual_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of rows of probabilities, averaged over rows."""
    return (p * (p / q).log()).sum(-1).mean()


def test_multitask_loss_is_weighted_sum_and_skips_undefined_targets():
    torch.manual_seed(0)
    logits, visual, audio = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 2)
    labels = torch.tensor([0, 1, 1, 0])
    audio_labels = torch.tensor([1, IGNORE_INDEX, 0, IGNORE_INDEX])
    losses = multitask_loss(
        logits,
        {"visual": visual, "audio": audio},
        labels,
        {"visual": labels, "audio": audio_labels},
        {"visual": 0.5, "audio": 2.0},
    )
    expected_audio = F.cross_entropy(audio[[0, 2]], audio_labels[[0, 2]])
    expected = F.cross_entropy(logits, labels) + 0.5 * F.cross_entropy(visual, labels) + 2.0 * expected_audio
    assert losses.total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses.parts["ce_audio"].item() == pytest.approx(expected_audio.item(), rel=1e-6)
    assert set(losses.item_parts()) == {"ce_main", "ce_visual", "ce_audio", "class"}


def test_all_undefined_targets_give_zero_but_stay_in_the_graph():
    logits = torch.randn(3, 2, requires_grad=True)
    loss = masked_cross_entropy(logits, torch.full((3,), IGNORE_INDEX))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_missing_aux_targets_is_an_error():
    with pytest.raises(KeyError, match="text"):
        multitask_loss(torch.randn(2, 2), {"text": torch.randn(2, 2)}, torch.tensor([0, 1]), {}, {"text": 1.0})


def test_distillation_terms_are_zero_when_student_equals_teacher():
    torch.manual_seed(0)
    z = torch.randn(5, 8)
    logits = torch.randn(5, 2)
    projection = TeacherProjection(8, 8)
    with torch.no_grad():
        projection.linear.weight.copy_(torch.eye(8))
        projection.linear.bias.zero_()
    assert embedding_distill_loss(z, projection(z)).item() == pytest.approx(0.0, abs=1e-6)
    assert logit_distill_loss(logits, logits.clone(), temperature=2.0).item() == pytest.approx(0.0, abs=1e-7)
    # cosine distance ignores scale, and is 2 for opposite vectors
    assert embedding_distill_loss(z, 3 * z).item() == pytest.approx(0.0, abs=1e-6)
    assert embedding_distill_loss(z, -z).item() == pytest.approx(2.0, abs=1e-6)


def test_kl_direction_is_teacher_to_student():
    teacher = torch.tensor([[3.0, -1.0], [0.2, 0.1]])
    student = torch.tensor([[0.0, 0.0], [-2.0, 1.0]])
    t = 1.0
    p_t, p_s = teacher.softmax(-1), student.softmax(-1)
    got = logit_distill_loss(student, teacher, temperature=t, scale_by_t2=False)
    assert got.item() == pytest.approx(manual_kl(p_t, p_s).item(), rel=1e-5)
    assert got.item() != pytest.approx(manual_kl(p_s, p_t).item(), rel=1e-2)  # KL is not symmetric here


def test_temperature_softens_and_t2_rescales():
    teacher, student = torch.tensor([[4.0, -4.0]]), torch.tensor([[-1.0, 1.0]])
    plain = logit_distill_loss(student, teacher, temperature=3.0, scale_by_t2=False)
    p_t, p_s = (teacher / 3).softmax(-1), (student / 3).softmax(-1)
    assert plain.item() == pytest.approx(manual_kl(p_t, p_s).item(), rel=1e-5)
    scaled = logit_distill_loss(student, teacher, temperature=3.0, scale_by_t2=True)
    assert scaled.item() == pytest.approx(9 * plain.item(), rel=1e-6)


class TinyNet(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Linear(6, width)
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.body(x)
        return self.head(z), z


def test_gradients_reach_student_and_projection_not_teacher():
    torch.manual_seed(0)
    student, teacher = TinyNet(4), TinyNet(10)
    for p in teacher.parameters():
        p.requires_grad_(True)  # even a teacher left trainable by mistake must not be updated
    loss_fn = DistillationLoss(DistillConfig(), teacher_dim=10, student_dim=4)
    x, labels = torch.randn(8, 6), torch.randint(0, 2, (8,))
    s_logits, s_z = student(x)
    t_logits, t_z = teacher(x)
    classification = multitask_loss(s_logits, {}, labels, {}, {})
    losses = loss_fn(s_logits, s_z, t_logits, t_z, classification)
    losses.total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss_fn.projection.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_total_combines_terms_with_lambda_and_weights():
    torch.manual_seed(1)
    s_logits, t_logits = torch.randn(4, 2), torch.randn(4, 2)
    s_z, t_z = torch.randn(4, 3), torch.randn(4, 5)
    labels = torch.tensor([0, 1, 0, 1])
    classification = multitask_loss(s_logits, {}, labels, {}, {})
    config = DistillConfig(lam=1.5, emb_weight=1.0, logits_weight=0.5, temperature=2.0)
    losses = DistillationLoss(config, 5, 3)(s_logits, s_z, t_logits, t_z, classification)
    parts = losses.item_parts()
    expected = 1.5 * (parts["emb"] + 0.5 * parts["logits"]) + parts["class"]
    assert losses.total.item() == pytest.approx(expected, rel=1e-6)
    assert parts["emb"] > 0 and parts["logits"] > 0


def test_config_is_validated():
    with pytest.raises(ValueError):
        DistillConfig(temperature=0)
    with pytest.raises(ValueError):
        DistillConfig(lam=-1)


def test_an_unlabelled_pair_adds_nothing_to_the_main_cross_entropy():
    logits = torch.randn(3, 2)
    losses = multitask_loss(logits, {}, torch.tensor([1, IGNORE_INDEX, 0]), {}, {})
    assert losses.total.item() == pytest.approx(F.cross_entropy(logits[[0, 2]], torch.tensor([1, 0])).item(), rel=1e-6)
