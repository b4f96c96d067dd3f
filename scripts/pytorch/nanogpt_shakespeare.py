"""nanoGPT's shakespeare_char CPU run (its model.py and train.py loop, written out for this one configuration) for a
side-by-side comparison with gpt-train (docs/benchmarks.md):

    python3 scripts/pytorch/nanogpt_shakespeare.py data/tinyshakespeare/input.txt [SEED]

nanoGPT as published: SDPA causal attention, exact nn.GELU, tied head, nanoGPT's initialisation, AdamW(fused=False)
with weight decay on >= 2-D parameters, linear warmup and cosine decay, clipping at 1.0. Prints the loop's time and
the validation loss at step 2000 both as nanoGPT estimates it (20 random batches) and on 200 batches.
Needs: pip install torch numpy
"""
import math, sys, time, numpy as np, torch, torch.nn as nn
from torch.nn import functional as F
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1337
torch.manual_seed(seed)
text = open(sys.argv[1]).read()
chars = sorted(set(text)); stoi = {c: i for i, c in enumerate(chars)}
data = np.array([stoi[c] for c in text], dtype=np.int64); n = len(data)
train, val = torch.from_numpy(data[:int(n * 0.9)]), torch.from_numpy(data[int(n * 0.9):])
B, T, L, H, C, V = 12, 64, 4, 4, 128, len(chars)
class LN(nn.Module):
    def __init__(s, d): super().__init__(); s.weight = nn.Parameter(torch.ones(d))
    def forward(s, x): return F.layer_norm(x, s.weight.shape, s.weight, None, 1e-5)
class Attn(nn.Module):
    def __init__(s): super().__init__(); s.c_attn = nn.Linear(C, 3 * C, bias=False); s.c_proj = nn.Linear(C, C, bias=False)
    def forward(s, x):
        b, t, c = x.size(); q, k, v = s.c_attn(x).split(C, dim=2)
        q, k, v = [z.view(b, t, H, c // H).transpose(1, 2) for z in (q, k, v)]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0, is_causal=True)
        return s.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))
class MLP(nn.Module):
    def __init__(s): super().__init__(); s.c_fc = nn.Linear(C, 4 * C, bias=False); s.gelu = nn.GELU(); s.c_proj = nn.Linear(4 * C, C, bias=False)
    def forward(s, x): return s.c_proj(s.gelu(s.c_fc(x)))
class Block(nn.Module):
    def __init__(s): super().__init__(); s.ln_1 = LN(C); s.attn = Attn(); s.ln_2 = LN(C); s.mlp = MLP()
    def forward(s, x): x = x + s.attn(s.ln_1(x)); return x + s.mlp(s.ln_2(x))
class GPT(nn.Module):
    def __init__(s):
        super().__init__()
        s.transformer = nn.ModuleDict(dict(wte=nn.Embedding(V, C), wpe=nn.Embedding(T, C), h=nn.ModuleList([Block() for _ in range(L)]), ln_f=LN(C)))
        s.lm_head = nn.Linear(C, V, bias=False); s.transformer.wte.weight = s.lm_head.weight
        s.apply(s._init)
        for pn, p in s.named_parameters():
            if pn.endswith('c_proj.weight'): torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * L))
    def _init(s, m):
        if isinstance(m, (nn.Linear, nn.Embedding)): torch.nn.init.normal_(m.weight, mean=0.0, std=0.02)
    def forward(s, idx, targets):
        x = s.transformer.wte(idx) + s.transformer.wpe(torch.arange(idx.size(1)))
        for blk in s.transformer.h: x = blk(x)
        logits = s.lm_head(s.transformer.ln_f(x))
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))
model = GPT()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW([{'params': [p for p in params if p.dim() >= 2], 'weight_decay': 0.1},
                         {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0}], lr=1e-3, betas=(0.9, 0.99), fused=False)
def get_batch(split):
    d = train if split == 'train' else val
    ix = torch.randint(len(d) - T, (B,))
    return torch.stack([d[i:i + T] for i in ix]), torch.stack([d[i + 1:i + 1 + T] for i in ix])
def lr_at(it):
    if it < 100: return 1e-3 * (it + 1) / 101
    r = (it - 100) / (2000 - 100); return 1e-4 + 0.5 * (1 + math.cos(math.pi * r)) * (1e-3 - 1e-4)
@torch.no_grad()
def estimate(iters, gen=None):
    model.eval(); out = 0.0
    for _ in range(iters):
        d = val; ix = torch.randint(len(d) - T, (B,), generator=gen)
        x = torch.stack([d[i:i + T] for i in ix]); y = torch.stack([d[i + 1:i + 1 + T] for i in ix])
        out += model(x, y).item()
    model.train(); return out / iters
t0 = time.time()
for it in range(2000):
    for g in opt.param_groups: g['lr'] = lr_at(it)
    x, y = get_batch('train'); loss = model(x, y); loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
dt = time.time() - t0
v20 = estimate(20); g = torch.Generator().manual_seed(12345); v200 = estimate(200, g)
print(f"seed {seed}: 2000 steps in {dt:.1f}s ({2000*B*T/dt:.0f} tok/s), val loss 20 batches {v20:.4f}, 200 batches {v200:.4f}", flush=True)
