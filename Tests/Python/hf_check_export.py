"""Checks a folder written by `gpt-train export --to hf` with transformers (run by InterchangeCommandTests).

usage: hf_check_export.py DIR TOKENS.i32 LOGITS.f32 T TEXT_FILE
  TOKENS.i32: int32 windows of T tokens; LOGITS.f32: gpt-train's float32 logits for them ([windows, T, vocab]).
Prints one JSON object: loading info, the logits' largest difference and largest magnitude, AutoTokenizer's ids
for the text and whether decoding gives the text back.
"""
import json
import sys

import numpy as np
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

directory, tokens_path, logits_path, t, text_path = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
model, info = GPT2LMHeadModel.from_pretrained(directory, output_loading_info=True, dtype=torch.float32)
model.eval()
tokens = np.fromfile(tokens_path, dtype=np.int32).reshape(-1, t)
ours = np.fromfile(logits_path, dtype=np.float32).reshape(tokens.shape[0], t, -1)
with torch.no_grad():
    theirs = model(torch.from_numpy(tokens.astype(np.int64))).logits.numpy()
tokenizer = AutoTokenizer.from_pretrained(directory)
text = open(text_path, encoding="utf-8", newline="").read()
ids = tokenizer(text)["input_ids"]
print(json.dumps({
    "missing": list(info["missing_keys"]),
    "unexpected": list(info["unexpected_keys"]),
    "mismatched": [list(map(str, m)) for m in info.get("mismatched_keys", [])],
    "shape_ours": list(ours.shape),
    "shape_theirs": list(theirs.shape),
    "max_difference": float(np.abs(theirs - ours).max()) if theirs.shape == ours.shape else None,
    "max_magnitude": float(np.abs(ours).max()),
    "ids": ids,
    "decoded_equal": tokenizer.decode(ids) == text,
}))
