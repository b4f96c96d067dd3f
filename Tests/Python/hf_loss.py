"""transformers' loss of a saved GPT-2 on windows of tokens, as `gpt-train eval` defines them (run by
InterchangeCommandTests): window k has inputs t[kT:kT+T] and targets t[kT+1:kT+T+1]; the mean over all positions.

usage: hf_loss.py DIR TOKENS.i32 T WINDOWS
"""
import sys

import numpy as np
import torch
from transformers import GPT2LMHeadModel

directory, tokens_path, t, windows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model = GPT2LMHeadModel.from_pretrained(directory, torch_dtype=torch.float32)
model.eval()
tokens = torch.from_numpy(np.fromfile(tokens_path, dtype=np.int32).astype(np.int64))
inputs = torch.stack([tokens[k * t:k * t + t] for k in range(windows)])
targets = torch.stack([tokens[k * t + 1:k * t + t + 1] for k in range(windows)])
with torch.no_grad():
    logits = model(inputs).logits.double()
loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
print(repr(loss.item()))
