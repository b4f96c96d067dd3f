"""PyTorch training-step throughput (forward, backward, clip, AdamW) of nanoGPT's model at gpt-bench's
configurations (docs/benchmarks.md):

    python3 scripts/pytorch/nanogpt_speed.py a b c
    python3 scripts/pytorch/nanogpt_speed.py --bf16 a b c   # the forward pass under torch.autocast("cpu", bfloat16)

Needs: pip install torch
"""
import contextlib, os, sys, time, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import GPT, GPTConfig
configs = {'a': (12, 64, 4, 4, 128, 65), 'b': (8, 256, 6, 6, 384, 65), 'c': (4, 64, 12, 12, 768, 50304)}
args = sys.argv[1:]
bf16 = '--bf16' in args
args = [a for a in args if a != '--bf16']
for name in args:
    B, T, L, H, C, V = configs[name]
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=max(T, 64) if name != 'c' else 1024, vocab_size=V, n_layer=L, n_head=H, n_embd=C, bias=False))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=False)
    x = torch.randint(V, (B, T)); y = torch.randint(V, (B, T))
    times = []
    steps = int(os.environ.get('STEPS', '10'))   # timed steps, after 2 untimed ones (the median is printed)
    for i in range(steps + 2):
        t0 = time.time()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
        if i >= 2: times.append(time.time() - t0)
    times.sort(); dt = times[len(times) // 2]
    print(f"{name}: {B*T/dt:.0f} tokens/s ({dt*1000:.1f} ms/step), torch {torch.__version__}, {torch.get_num_threads()} threads{', bf16 autocast' if bf16 else ''}", flush=True)
