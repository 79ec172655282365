import pytest
import torch

from rci.inference.checkpoint import load_checkpoint
from rci.training.data import collate_batch
from rci.training.loop import TrainConfig
from rci.training.stage1 import (
    VARIANTS,
    MatchLiteObjective,
    RunInfo,
    build_matchlite,
    save_matchlite_run,
    train_matchlite,
    variant_config,
)

from tests.training.synthetic_pairs import single_thread, synthetic_dataset, tiny_config  # noqa: F401


@torch.no_grad()
def dataset_loss(model, dataset) -> float:
    model.eval()
    return float(MatchLiteObjective(model)(collate_batch([dataset[i] for i in range(len(dataset))])).total)


def test_variants_switch_modalities_and_aux_heads():
    base = tiny_config()
    assert variant_config(base, "V").modalities == ("v",)
    assert variant_config(base, "V").aux_heads == ("visual",)
    assert variant_config(base, "V+A").aux_heads == ("visual", "audio")
    assert variant_config(base, "V+T").use_text and not variant_config(base, "V+T").use_audio
    assert variant_config(base, "V+A+T").aux_heads == ("visual", "audio", "text")
    assert set(VARIANTS) == {"V", "V+A", "V+T", "V+A+T"}
    with pytest.raises(ValueError, match="unknown variant"):
        variant_config(base, "A")


def test_stage1_reduces_training_loss():
    train = synthetic_dataset(8, seed=0)
    config = variant_config(tiny_config(), "V+A+T")
    before = dataset_loss(build_matchlite(config, seed=0), train)
    model, result = train_matchlite(
        config, train, TrainConfig.matchlite(epochs=20, batch_size=4, lr=1e-2), progress=False
    )
    after = dataset_loss(model, train)  # eval mode: BatchNorm running statistics included
    assert result.steps == 20 * 2
    assert len(result.history) == 20 and "ce_main" in result.history[0].losses
    assert after < 0.5 * before, (before, after)


def test_checkpoint_carries_config_and_run_info(tmp_path):
    train = synthetic_dataset(8, seed=1)
    config = variant_config(tiny_config(), "V+A")
    tc = TrainConfig.matchlite(epochs=1, batch_size=4)
    model, result = train_matchlite(config, train, tc, progress=False)
    info = RunInfo("stage1", "V+A", "enc-test", tc.to_dict(), result.to_dict())
    meta = save_matchlite_run(tmp_path / "m.pt", model, info)
    loaded, loaded_meta = load_checkpoint(tmp_path / "m.pt")
    assert loaded.config == config
    assert loaded_meta == meta
    assert meta["model_version"].startswith("matchlite-stage1-va-") and meta["model_version"].endswith("+enc-test")
    assert meta["train_config"]["lr"] == 1e-4 and meta["variant"] == "V+A"
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])


def test_a_last_batch_of_one_pair_is_dropped_rather_than_breaking_batch_norm():
    train = synthetic_dataset(9, seed=2)  # 9 = 2 batches of 4 + 1
    config = variant_config(tiny_config(), "V+A+T")
    _, result = train_matchlite(config, train, TrainConfig.matchlite(epochs=2, batch_size=4), progress=False)
    assert result.steps == 2 * 2


def test_training_draws_from_its_own_seed_whatever_the_process_drew_before():
    """Dropout masks come from TrainConfig.seed: a model trained after other work used the global RNG
    (computing features, say) equals one trained without it, and the caller's RNG is left alone."""
    train = synthetic_dataset(8, seed=0)
    config = variant_config(tiny_config(), "V+A+T")
    train_config = TrainConfig.matchlite(epochs=2, batch_size=4, lr=1e-2)
    torch.manual_seed(1)
    first, _ = train_matchlite(config, train, train_config, progress=False)
    after_first = torch.rand(3)
    torch.manual_seed(2)
    torch.rand(1000)  # other work in between
    second, _ = train_matchlite(config, train, train_config, progress=False)
    for name, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[name], value, msg=name)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(3), after_first)  # training consumed none of the caller's draws
