"""transformers' LlamaForCausalLM as the reference for `gpt-train import`/`export` of Llama-family models (run by
LlamaInterchangeTests). Three commands:

  hf_llama.py make DIR TRAINING_TEXT
      a byte-level BPE tokenizer trained on the text and two random LlamaForCausalLM (hidden 32, 4 heads,
      intermediate 48, 2 layers, rope_theta 5000, rms_norm_eps 1e-6), every weight perturbed so that each tensor
      matters, saved with save_pretrained with the tokenizer: DIR/gqa (2 key/value heads, untied head) and DIR/tied
      (4 key/value heads, tie_word_embeddings); DIR/gqa-bf16 is DIR/gqa saved in bfloat16.
  hf_llama.py loss TOKENS.i32 T WINDOWS DIR...
      for each DIR, the loss on windows as `gpt-train eval` defines them (window k: inputs t[kT:kT+T], targets
      t[kT+1:kT+T+1]), the mean over every position, from float32 logits (softmax in float64).
  hf_llama.py check DIR TOKENS.i32 LOGITS.f32 T
      loads DIR with from_pretrained (loading info), and compares its logits for windows of T tokens with ours
      (float32, [windows, T, vocab]), in float32 and with the model in float64.

Each prints one JSON object.
"""
import json
import sys

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM


def make(directory, text_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train([text_path], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(0)
    end = tokenizer.token_to_id("<|endoftext|>")
    report = {}
    for name, kv_heads, tie in [("gqa", 2, False), ("tied", 4, True)]:
        config = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=kv_heads, max_position_embeddings=64,
                             vocab_size=tokenizer.get_vocab_size(), rope_theta=5000.0, rms_norm_eps=1e-6,
                             tie_word_embeddings=tie, bos_token_id=end, eos_token_id=end)
        model = LlamaForCausalLM(config)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)  # RMSNorm gains too, so every tensor matters
        path = f"{directory}/{name}"
        model.save_pretrained(path)
        fast.save_pretrained(path)
        if name == "gqa":  # as hub models are stored: bfloat16
            model.to(torch.bfloat16).save_pretrained(f"{directory}/gqa-bf16")
            fast.save_pretrained(f"{directory}/gqa-bf16")
        report[name] = {"parameters": sum(p.numel() for p in model.parameters()),
                        "tied": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()}
    print(json.dumps(report))


def windows_of(tokens_path, t, count=None):
    tokens = np.fromfile(tokens_path, dtype=np.int32).astype(np.int64)
    count = count if count is not None else len(tokens) // t
    return torch.from_numpy(tokens), count


def loss(tokens_path, t, windows, directories):
    tokens, _ = windows_of(tokens_path, t)
    inputs = torch.stack([tokens[k * t:k * t + t] for k in range(windows)])
    targets = torch.stack([tokens[k * t + 1:k * t + t + 1] for k in range(windows)])
    report = {}
    for directory in directories:
        model = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32)
        model.eval()
        with torch.no_grad():
            logits = model(inputs).logits.double()
        value = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        report[directory] = value.item()
    print(json.dumps(report))


def check(directory, tokens_path, logits_path, t):
    model, info = LlamaForCausalLM.from_pretrained(directory, output_loading_info=True, dtype=torch.float32)
    model.eval()
    tokens = np.fromfile(tokens_path, dtype=np.int32).reshape(-1, t)
    ours = np.fromfile(logits_path, dtype=np.float32).reshape(tokens.shape[0], t, -1)
    inputs = torch.from_numpy(tokens.astype(np.int64))
    with torch.no_grad():
        theirs = model(inputs).logits.numpy()
        wide = model.to(torch.float64)(inputs).logits.numpy()
    same_shape = theirs.shape == ours.shape
    print(json.dumps({
        "missing": list(info["missing_keys"]),
        "unexpected": list(info["unexpected_keys"]),
        "mismatched": [list(map(str, m)) for m in info.get("mismatched_keys", [])],
        "tied": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(),
        "num_key_value_heads": model.config.num_key_value_heads,
        "rope_theta": model.config.rope_parameters["rope_theta"],
        "rms_norm_eps": model.config.rms_norm_eps,
        "shape_ours": list(ours.shape),
        "shape_theirs": list(theirs.shape),
        "max_difference": float(np.abs(theirs - ours).max()) if same_shape else None,
        "max_difference_float64": float(np.abs(wide - ours.astype(np.float64)).max()) if same_shape else None,
        "max_magnitude": float(np.abs(ours).max()),
    }))


command = sys.argv[1]
if command == "make":
    make(sys.argv[2], sys.argv[3])
elif command == "loss":
    loss(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:])
elif command == "check":
    check(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
else:
    sys.exit(f"hf_llama.py: unknown command {command}")
