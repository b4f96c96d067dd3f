"""nanoGPT's model.py, reduced to what the comparisons use: the same module names, parameter layout, API
(GPTConfig, GPT(config), forward -> (logits, loss)) and exact GELU. Used by nanogpt_speed.py and, through
examples/load_checkpoint.py --nanogpt scripts/pytorch, to load gpt-train checkpoints into nanoGPT's layout."""
import math
from dataclasses import dataclass
import torch, torch.nn as nn
from torch.nn import functional as F
@dataclass
class GPTConfig:
    block_size: int = 1024; vocab_size: int = 50304; n_layer: int = 12; n_head: int = 12; n_embd: int = 768
    dropout: float = 0.0; bias: bool = True
class LayerNorm(nn.Module):
    def __init__(s, ndim, bias): super().__init__(); s.weight = nn.Parameter(torch.ones(ndim)); s.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
    def forward(s, x): return F.layer_norm(x, s.weight.shape, s.weight, s.bias, 1e-5)
class CausalSelfAttention(nn.Module):
    def __init__(s, c): super().__init__(); s.c_attn = nn.Linear(c.n_embd, 3*c.n_embd, bias=c.bias); s.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias); s.n_head=c.n_head; s.n_embd=c.n_embd
    def forward(s, x):
        B,T,C = x.size(); q,k,v = s.c_attn(x).split(s.n_embd, dim=2)
        q,k,v = [z.view(B,T,s.n_head,C//s.n_head).transpose(1,2) for z in (q,k,v)]
        return s.c_proj(F.scaled_dot_product_attention(q,k,v,is_causal=True).transpose(1,2).contiguous().view(B,T,C))
class MLP(nn.Module):
    def __init__(s, c): super().__init__(); s.c_fc = nn.Linear(c.n_embd, 4*c.n_embd, bias=c.bias); s.gelu = nn.GELU(); s.c_proj = nn.Linear(4*c.n_embd, c.n_embd, bias=c.bias)
    def forward(s, x): return s.c_proj(s.gelu(s.c_fc(x)))
class Block(nn.Module):
    def __init__(s, c): super().__init__(); s.ln_1 = LayerNorm(c.n_embd, c.bias); s.attn = CausalSelfAttention(c); s.ln_2 = LayerNorm(c.n_embd, c.bias); s.mlp = MLP(c)
    def forward(s, x): x = x + s.attn(s.ln_1(x)); return x + s.mlp(s.ln_2(x))
class GPT(nn.Module):
    def __init__(s, c):
        super().__init__(); s.config = c
        s.transformer = nn.ModuleDict(dict(wte=nn.Embedding(c.vocab_size, c.n_embd), wpe=nn.Embedding(c.block_size, c.n_embd), drop=nn.Dropout(c.dropout), h=nn.ModuleList([Block(c) for _ in range(c.n_layer)]), ln_f=LayerNorm(c.n_embd, c.bias)))
        s.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False); s.transformer.wte.weight = s.lm_head.weight
    def forward(s, idx, targets=None):
        x = s.transformer.drop(s.transformer.wte(idx) + s.transformer.wpe(torch.arange(idx.size(1))))
        for b in s.transformer.h: x = b(x)
        logits = s.lm_head(s.transformer.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
