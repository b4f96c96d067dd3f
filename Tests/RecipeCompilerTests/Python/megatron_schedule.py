#!/usr/bin/env python3
"""The learning rate of every update that megatron-core's own OptimizerParamScheduler gives a train.sh's arguments.

Usage: megatron_schedule.py TRAIN_SH
Reads the ARGS=( ... ) of an exported train.sh and sets the scheduler up as Megatron-LM's
get_optimizer_param_scheduler does for iteration-based training (steps counted in samples: iterations × global
batch, incremented by the global batch after each update); prints a JSON list, the rate of updates 0, 1, ...,
train_iters − 1. Exit status 3 when megatron-core is not installed.
"""
import json
import shlex
import sys
import warnings

warnings.filterwarnings("ignore")
try:
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
except ImportError as error:
    print(f"megatron-core is not installed: {error}", file=sys.stderr)
    sys.exit(3)

text = open(sys.argv[1]).read()
argv = shlex.split(text[text.index("ARGS=(") + 6:text.index("\n)\n")])
flags = {}
i = 0
while i < len(argv):
    if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
        flags[argv[i]] = argv[i + 1]
        i += 2
    else:
        flags[argv[i]] = ""
        i += 1

gbs = int(flags["--global-batch-size"])
iters = int(flags["--train-iters"])


class Optimizer:
    param_groups = [{}]


scheduler = OptimizerParamScheduler(
    Optimizer(),
    init_lr=float(flags.get("--lr-warmup-init", 0.0)),
    max_lr=float(flags["--lr"]),
    min_lr=float(flags["--min-lr"]),
    lr_warmup_steps=int(flags["--lr-warmup-iters"]) * gbs,
    lr_decay_steps=int(flags["--lr-decay-iters"]) * gbs,
    lr_decay_style=flags["--lr-decay-style"],
    start_wd=float(flags["--weight-decay"]),
    end_wd=float(flags["--weight-decay"]),
    wd_incr_steps=iters * gbs,
    wd_incr_style="constant",
)
rates = []
for update in range(iters):
    rates.append(Optimizer.param_groups[0]["lr"])
    scheduler.step(increment=gbs)
print(json.dumps(rates))
