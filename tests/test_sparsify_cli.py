"""`genesis sparsify` end to end on a tiny dense checkpoint."""
import json

import numpy as np
import pytest

import genesis
from genesis.cli import main
from genesis.models.transformers import MoEConfig, MoEForCausalLM
from genesis.models.transformers import ByteTokenizer

DENSE = dict(model_type="llama", vocab_size=256, hidden_size=32, intermediate_size=64,
             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=64, num_local_experts=0, tie_word_embeddings=True)
TEXT = ("Dense models become sparse: experts share the neurons of each MLP. " * 30 +
        "The router picks the experts that hold most of a token's activation. " * 30)


@pytest.fixture()
def dense_dir(tmp_path):
    genesis.manual_seed(0)
    MoEForCausalLM(MoEConfig(**DENSE)).save_pretrained(tmp_path / "dense")
    ByteTokenizer().save_pretrained(str(tmp_path / "dense"))
    (tmp_path / "calib.txt").write_text(TEXT)
    return tmp_path


def _argv(d, mode, extra=()):
    return ["sparsify", "--checkpoint", str(d / "dense"), "--mode", mode, "--experts", "4",
            "--top-k", "2", "--calibration", str(d / "calib.txt"), "--calibration-tokens",
            "512", "--eval-tokens", "256", "--seq-len", "32", "--router-steps", "3",
            "--out", str(d / mode), *extra]


@pytest.mark.parametrize("mode", ["genesis", "mixtral", "deepseek"])
def test_sparsify_reports_losses_and_writes_a_loadable_checkpoint(dense_dir, mode, capsys):
    assert main(_argv(dense_dir, mode, ["--tune-steps", "2"])) == 0
    printed = capsys.readouterr().out
    for phase in ("dense", "convert", "converted", "routers tuned", "all tuned"):
        assert any(line.startswith(phase + " ") for line in printed.splitlines()), phase
    assert "held-out loss" in printed and "peak RSS" in printed
    summary = json.loads((dense_dir / mode / "sparsify.json").read_text())
    phases = {p["phase"]: p for p in summary["phases"]}
    assert phases["routers tuned"]["steps"] == 3 and phases["all tuned"]["steps"] == 2
    assert summary["eval_tokens"] == 256 and summary["calibration_tokens"] == 512
    model = MoEForCausalLM.from_pretrained(dense_dir / mode)
    assert model.config.num_local_experts == 4
    if mode == "genesis":    # tuning steps update the router's state as training does
        assert np.any(model.model.layers[0].mlp.gate.cost_potential.numpy() != 0)
    ids = genesis.tensor(np.asarray(ByteTokenizer().encode(TEXT[-257:]))[None, :])
    with genesis.no_grad():
        loss, _ = model(ids, labels=ids)
    assert np.isfinite(loss.item())
    windows = np.asarray(ByteTokenizer().encode(TEXT))[-256:].reshape(8, 32)
    total = 0.0
    with genesis.no_grad():
        for i in range(0, 8, 4):       # the reported loss is plain cross-entropy, no aux term
            part = genesis.tensor(windows[i:i + 4])
            logits = model(part).numpy().astype(np.float64)
            logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            target = windows[i:i + 4, 1:]
            total += -np.take_along_axis(logp[:, :-1], target[..., None], -1).mean() * 4
    assert abs(total / 8 - phases["all tuned"]["heldout_loss"]) < 1e-3


def test_router_only_tuning_leaves_experts_untouched(dense_dir, capsys):
    assert main(_argv(dense_dir, "mixtral", ["--router-steps", "0"])) == 0
    untuned = MoEForCausalLM.from_pretrained(dense_dir / "mixtral")
    assert main(_argv(dense_dir, "mixtral")) == 0
    tuned = MoEForCausalLM.from_pretrained(dense_dir / "mixtral")
    for (name, a), (_, b) in zip(untuned.state_dict().items(), tuned.state_dict().items()):
        if name.endswith("mlp.gate.weight"):
            assert not np.array_equal(a.numpy(), b.numpy()), name
        else:
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


@pytest.mark.parametrize("extra, message", [
    (["--experts", "3"], "do not split into 3 equal experts"),
    (["--eval-tokens", "100000"], "it needs at least"),
])
def test_bad_options_give_one_line_errors(dense_dir, capsys, extra, message):
    assert main(_argv(dense_dir, "mixtral") + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_negative_steps_are_a_usage_error(dense_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(_argv(dense_dir, "mixtral") + ["--tune-steps", "-1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--tune-steps" in err and ">= 0" in err and len(err.strip().splitlines()) == 1


def test_moe_checkpoint_is_rejected(dense_dir, capsys):
    assert main(_argv(dense_dir, "mixtral")) == 0
    argv = _argv(dense_dir, "mixtral")
    argv[argv.index("--checkpoint") + 1] = str(dense_dir / "mixtral")
    argv[argv.index("--out") + 1] = str(dense_dir / "again")
    capsys.readouterr()
    assert main(argv) == 2
    assert "already has MoE layers" in capsys.readouterr().err


def test_checkpoint_tokenizer_reads_a_transformers_tokenizer_json(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from genesis.commands.common import checkpoint_tokenizer
    from genesis.models.transformers import PreTrainedTokenizerFast
    from genesis.train.data import CLIError
    vocab = {"[UNK]": 0, "dense": 1, "sparse": 2}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text('{"model_max_length": 8192}')
    found = checkpoint_tokenizer(None, str(tmp_path), 3)
    assert isinstance(found, PreTrainedTokenizerFast)
    assert list(found.encode("sparse dense")) == [2, 1]
    with pytest.raises(CLIError, match="the tokenizer has 3 tokens"):
        checkpoint_tokenizer(None, str(tmp_path), 2)
