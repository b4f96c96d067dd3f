"""PyTorch beside `gpt-bench train --config l`: transformers' LlamaForCausalLM in the shape gpt-bench's config l
trains (12 layers, d_model 768, 12 heads, 4 KV heads, SwiGLU d_ff 2048, RMSNorm eps 1e-5, rope_theta 10000, no
biases, the head tied to the token embedding, vocabulary 50304, T 1024, micro-batch 1), one training step as
gpt-bench times it: forward, cross-entropy over all T positions, backward, clip_grad_norm_(1.0), AdamW
(betas 0.9/0.95, eps 1e-8, weight decay 0.1, fused=False). Prints one JSON line: tokens/s (median step), the
forward/backward/optimizer split, CPU ms a step (all threads) and the process's peak RSS.

    python3 scripts/pytorch/llama_speed.py                     # fp32
    python3 scripts/pytorch/llama_speed.py --bf16              # forward under torch.autocast("cpu", bfloat16)
    python3 scripts/pytorch/llama_speed.py --recompute full    # model.gradient_checkpointing_enable() (each block)
    python3 scripts/pytorch/llama_speed.py --untied --batch 4 --time 64 --steps 10

Needs: pip install torch transformers
"""
import argparse, json, os, resource, statistics, time
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

p = argparse.ArgumentParser()
p.add_argument("--bf16", action="store_true", help='forward pass under torch.autocast("cpu", dtype=torch.bfloat16)')
p.add_argument("--recompute", choices=["none", "full"], default="none",
               help="full: transformers' gradient checkpointing, each decoder layer's forward again in the backward")
p.add_argument("--steps", type=int, default=3); p.add_argument("--warmup", type=int, default=1)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batch", type=int, default=1); p.add_argument("--time", type=int, default=1024)
p.add_argument("--layers", type=int, default=12); p.add_argument("--d-model", type=int, default=768)
p.add_argument("--heads", type=int, default=12); p.add_argument("--kv-heads", type=int, default=4)
p.add_argument("--d-ff", type=int, default=2048); p.add_argument("--vocab", type=int, default=50304)
p.add_argument("--untied", action="store_true", help="an output head of its own (Llama's default)")
a = p.parse_args()

torch.set_num_threads(a.threads); torch.manual_seed(0)
config = LlamaConfig(vocab_size=a.vocab, hidden_size=a.d_model, intermediate_size=a.d_ff,
                     num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                     max_position_embeddings=max(1024, a.time), rms_norm_eps=1e-5, rope_theta=10000.0,
                     attention_bias=False, mlp_bias=False, tie_word_embeddings=not a.untied, hidden_act="silu",
                     attn_implementation="sdpa", use_cache=False)
model = LlamaForCausalLM(config)
model.train()
if a.recompute == "full":
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
# Weight decay on 2-D weights only, as gpt-train (RMSNorm gains exempt).
decay = [q for q in model.parameters() if q.dim() >= 2]
other = [q for q in model.parameters() if q.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                        lr=1e-4, betas=(0.9, 0.95), eps=1e-8, fused=False)
x = torch.randint(0, a.vocab, (a.batch, a.time)); y = torch.randint(0, a.vocab, (a.batch, a.time))
n = a.batch * a.time
walls, forwards, backwards, updates, cpus = [], [], [], [], []
for i in range(a.warmup + a.steps):
    w0, c0 = time.perf_counter(), time.process_time()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.float().view(-1, a.vocab), y.view(-1))
    w1 = time.perf_counter()
    loss.backward()
    w2 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
    w3 = time.perf_counter()
    if i >= a.warmup:
        walls.append(w3 - w0); forwards.append(w1 - w0); backwards.append(w2 - w1); updates.append(w3 - w2)
        cpus.append(time.process_time() - c0)
    del logits, loss
step = statistics.median(walls)
print(json.dumps({
    "impl": "transformers.LlamaForCausalLM", "torch": torch.__version__,
    "transformers": __import__("transformers").__version__, "threads": torch.get_num_threads(),
    "bf16": a.bf16, "recompute": a.recompute, "tied": not a.untied, "batch": a.batch, "time": a.time,
    "parameters": sum(q.numel() for q in model.parameters()),
    "tokens_per_sec": round(n / step, 1), "step_ms": round(1000 * step, 1),
    "forward_ms": round(1000 * statistics.median(forwards), 1),
    "backward_ms": round(1000 * statistics.median(backwards), 1),
    "optimizer_ms": round(1000 * statistics.median(updates), 1),
    "cpu_ms_per_step": round(1000 * statistics.mean(cpus)),
    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}), flush=True)
