"""`genesis generate` / `genesis chat` on real checkpoint layouts: HF folder with tokenizer.json,
a training run's --out folder, a .gguf file; chat with piped stdin; one-line errors."""
import io
import json

import numpy as np
import pytest

import genesis
from genesis.cli import main
from genesis.models.transformers import MoEConfig, MoEForCausalLM
from genesis.models.transformers.tokenization import AutoTokenizer

from .test_tokenization import CHATML

TEXT = "hello there, tell me more about the world of experts. " * 30


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny Llama checkpoint saved by genesis with a BPE tokenizer.json and a chat template."""
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("jinja2")
    from tokenizers import decoders, models, pre_tokenizers, trainers
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    folder = tmp_path_factory.mktemp("hf")
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": CHATML}))
    genesis.manual_seed(0)
    config = MoEConfig.from_dict(dict(
        model_type="llama", vocab_size=tok.get_vocab_size(), hidden_size=32,
        intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256))
    MoEForCausalLM(config).save_pretrained(folder)
    return folder


def _run(argv, capsys, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _greedy(model, ids, n, eos):
    out = model.generate(genesis.tensor(np.array([ids])), max_new_tokens=n, eos_token_id=eos)
    return out.numpy()[0, len(ids):].tolist()


def test_generate_uses_the_tokenizer_json_next_to_the_checkpoint(hf_folder, capsys):
    code, out, err = _run(["generate", "--checkpoint", str(hf_folder), "--prompt", "hello there",
                           "--max-new-tokens", "6", "--temperature", "0"], capsys)
    assert code == 0, err
    tok = AutoTokenizer.from_pretrained(hf_folder)
    model = MoEForCausalLM.from_pretrained(hf_folder)
    new = _greedy(model, tok.encode("hello there"), 6, [tok.eos_token_id])
    assert out == "hello there" + tok.decode(new, skip_special_tokens=True) + "\n"


def test_checkpoint_may_be_a_training_run_folder(hf_folder, tmp_path, capsys):
    import shutil
    shutil.copytree(hf_folder, tmp_path / "checkpoint")
    code, out, err = _run(["generate", "--checkpoint", str(tmp_path), "--prompt", "hello",
                           "--max-new-tokens", "3", "--temperature", "0"], capsys)
    assert code == 0, err
    assert out.startswith("hello")


def test_chat_is_multi_turn_with_piped_stdin(hf_folder, capsys, monkeypatch):
    code, out, err = _run(["chat", "--checkpoint", str(hf_folder), "--system", "Be brief.",
                           "--max-new-tokens", "5", "--temperature", "0"], capsys,
                          stdin="hello there\n\ntell me more\n", monkeypatch=monkeypatch)
    assert code == 0, err
    tok = AutoTokenizer.from_pretrained(hf_folder)
    model = MoEForCausalLM.from_pretrained(hf_folder)
    messages = [{"role": "system", "content": "Be brief."}]
    want = []
    for text in ("hello there", "tell me more"):
        messages.append({"role": "user", "content": text})
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
        reply = tok.decode(_greedy(model, ids, 5, [tok.eos_token_id]), skip_special_tokens=True)
        want.append(reply)
        messages.append({"role": "assistant", "content": reply.strip()})
    assert out == "".join(r + "\n" for r in want)


def test_byte_tokenizer_is_refused_for_a_larger_vocabulary(hf_folder, tmp_path, capsys):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((hf_folder / name).read_bytes())
    code, _, err = _run(["generate", "--checkpoint", str(tmp_path)], capsys)
    assert code == 2 and "has no tokenizer.json" in err and "pass --tokenizer" in err
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"type": "byte"}))
    code, _, err = _run(["generate", "--checkpoint", str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "byte tokenizer (vocabulary 256) cannot drive a model with vocab_size" in err


def test_chat_needs_a_chat_template_and_checkpoint_errors_are_one_line(tmp_path, capsys,
                                                                       monkeypatch):
    genesis.manual_seed(0)
    config = MoEConfig.from_dict(dict(model_type="llama", vocab_size=256, hidden_size=16,
                                      intermediate_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=32))
    MoEForCausalLM(config).save_pretrained(tmp_path)
    code, _, err = _run(["chat", "--checkpoint", str(tmp_path)], capsys, stdin="hi\n",
                        monkeypatch=monkeypatch)
    assert code == 2 and "no chat template" in err
    for bad, message in ((tmp_path / "missing", "checkpoint not found"),
                         (tmp_path / "config.json", "not a .gguf")):
        code, _, err = _run(["generate", "--checkpoint", str(bad)], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_chat_with_a_gguf_checkpoint(tmp_path, capsys, monkeypatch):
    pytest.importorskip("gguf")
    from .gguf_files import write_llama_gguf
    from .test_gguf import CONFIG, _llama_state
    config = dict(CONFIG, hidden_size=64, intermediate_size=64)
    path = str(tmp_path / "tiny.gguf")
    write_llama_gguf(path, _llama_state(config), config, "Q8_0")
    code, out, err = _run(["chat", "--checkpoint", path, "--max-new-tokens", "4",
                           "--temperature", "0"], capsys, stdin="hello\nworld\n",
                          monkeypatch=monkeypatch)
    assert code == 0, err
    assert len(out.splitlines()) == 2
