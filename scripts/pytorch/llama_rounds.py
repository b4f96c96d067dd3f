"""Interleaved rounds of docs/benchmarks.md's Llama measurements, each run its own process, in one session:

  - gpt-bench train --config l (the Llama-style 124M-size model, T 1024, micro-batch 1), recompute none, selective
    and full, fp32 and bf16: tokens/s, CPU time a step, peak RSS;
  - gpt-bench train --config d (GPT-2 124M, the same T and micro-batch), fp32 and bf16: the MFU comparison;
  - scripts/pytorch/llama_speed.py (transformers' LlamaForCausalLM, the same shape and step): fp32, bf16 autocast,
    and fp32 with gradient checkpointing.

Every result is one JSON line: the tool's own, with "round", "run", "tool", "load" (/proc/loadavg's 1-minute figure
before the run), "started" and "wall_s". The planner's estimate to set beside each peak RSS is
`ModelShape.trainingMemoryBytes` (LlamaMemoryTests pins it for config l).

    python3 scripts/pytorch/llama_rounds.py --rounds 2 --out llama-rounds.jsonl [--bench .build/release/gpt-bench]
"""
import argparse, json, os, subprocess, sys, time

here = os.path.dirname(os.path.abspath(__file__))
p = argparse.ArgumentParser()
p.add_argument("--rounds", type=int, default=2)
p.add_argument("--out", default="llama-rounds.jsonl")
p.add_argument("--bench", default=os.path.join(here, "..", "..", ".build", "release", "gpt-bench"))
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--only", default="", help="comma-separated run names to keep (e.g. l-fp32-none,torch-fp32)")
a = p.parse_args()

common = ["train", "--steps", str(a.steps), "--warmup", "1", "--threads", str(a.threads), "--json"]
runs = []
for precision in ["fp32", "bf16"]:
    for mode in ["none", "selective", "full"]:
        runs.append((f"l-{precision}-{mode}", "gpt-bench",
                     [a.bench] + common + ["--config", "l", "--precision", precision, "--recompute", mode]))
    runs.append((f"d-{precision}-none", "gpt-bench", [a.bench] + common + ["--config", "d", "--precision", precision]))
torch_common = [sys.executable, os.path.join(here, "llama_speed.py"), "--steps", str(a.steps), "--warmup", "1",
                "--threads", str(a.threads)]
runs += [("torch-fp32", "pytorch", torch_common), ("torch-bf16", "pytorch", torch_common + ["--bf16"]),
         ("torch-fp32-full", "pytorch", torch_common + ["--recompute", "full"])]
if a.only:
    keep = set(a.only.split(","))
    runs = [r for r in runs if r[0] in keep]

with open(a.out, "a") as out:
    for r in range(1, a.rounds + 1):
        # Alternate the order between rounds so that neither tool always runs first.
        for name, tool, command in (runs if r % 2 else list(reversed(runs))):
            load = float(open("/proc/loadavg").read().split()[0])
            started = time.time()
            done = subprocess.run(command, capture_output=True, text=True)
            line = {"round": r, "run": name, "tool": tool, "load": load, "wall_s": round(time.time() - started, 1),
                    "started": time.strftime("%H:%M:%S", time.gmtime(started))}
            if done.returncode != 0:
                line["error"] = done.stderr[-400:]
            else:
                line.update(json.loads(done.stdout.strip().splitlines()[-1]))
            out.write(json.dumps(line) + "\n"); out.flush()
            print(json.dumps({k: line.get(k) for k in ["round", "run", "load", "tokens_per_sec", "cpu_ms_per_step",
                                                        "peak_memory_bytes", "peak_rss_mib", "mfu", "error"]}),
                  flush=True)
