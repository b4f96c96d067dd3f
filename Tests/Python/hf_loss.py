"""transformers' view of a saved GPT-2 and its tokenizer (run by InterchangeCommandTests): AutoTokenizer's ids for a
text and whether decoding gives the text back, and the loss on windows of tokens as `gpt-train eval` defines them
(window k has inputs t[kT:kT+T] and targets t[kT+1:kT+T+1]; the mean over all positions).

usage: hf_loss.py DIR TEXT_FILE TOKENS.i32 T WINDOWS
"""
import json
import sys

import numpy as np
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

directory, text_path, tokens_path, t, windows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
tokenizer = AutoTokenizer.from_pretrained(directory)
text = open(text_path, encoding="utf-8", newline="").read()
ids = tokenizer(text)["input_ids"]

model = GPT2LMHeadModel.from_pretrained(directory, dtype=torch.float32)
model.eval()
tokens = torch.from_numpy(np.fromfile(tokens_path, dtype=np.int32).astype(np.int64))
inputs = torch.stack([tokens[k * t:k * t + t] for k in range(windows)])
targets = torch.stack([tokens[k * t + 1:k * t + t + 1] for k in range(windows)])
with torch.no_grad():
    logits = model(inputs).logits.double()
loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
print(json.dumps({"ids": ids, "decoded_equal": tokenizer.decode(ids) == text, "loss": loss.item()}))
