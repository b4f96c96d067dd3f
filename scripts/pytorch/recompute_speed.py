"""PyTorch beside `gpt-bench train --config d --recompute MODE`: GPT-2 124M shape (12 x 12 x 768, bias-free,
vocabulary 50304, T 1024, micro-batch 1), AdamW steps with every activation kept ("none") or each block recomputed
in the backward pass (torch.utils.checkpoint, "full"). Prints one JSON line: tokens/s (median step), CPU ms a step
and the process's peak RSS. Usage: python recompute_speed.py none|full [--bf16] [--steps 3] [--threads 2]"""
import argparse, json, resource, statistics, sys, time
import torch
from torch.utils.checkpoint import checkpoint
sys.path.insert(0, __import__("os").path.dirname(__file__))
from model import GPT, GPTConfig

p = argparse.ArgumentParser()
p.add_argument("mode", choices=["none", "full"]); p.add_argument("--bf16", action="store_true")
p.add_argument("--steps", type=int, default=3); p.add_argument("--warmup", type=int, default=1)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(0)
model = GPT(GPTConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, bias=False))
if a.mode == "full":
    for block in model.transformer.h:
        forward = block.forward
        block.forward = (lambda f: lambda x: checkpoint(f, x, use_reentrant=False))(forward)
opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
x = torch.randint(0, 50257, (1, 1024)); y = torch.randint(0, 50257, (1, 1024))
walls, cpus = [], []
for i in range(a.warmup + a.steps):
    w0, c0 = time.perf_counter(), time.process_time()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        _, loss = model(x, y)
    loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
    if i >= a.warmup: walls.append(time.perf_counter() - w0); cpus.append(time.process_time() - c0)
print(json.dumps({"mode": a.mode, "bf16": a.bf16, "tokens_per_sec": round(1024 / statistics.median(walls)),
                  "cpu_ms_per_step": round(1000 * statistics.mean(cpus)),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
