#!/usr/bin/env python3
# Lists the --flags of Megatron-LM's argument parser, for Tests/RecipeCompilerTests/MegatronArguments.swift.
# Usage: git -C Megatron-LM checkout core_v0.16.1 && python3 scripts/megatron-arguments.py Megatron-LM flags.txt
# (needs megatron-core of the same release installed: pip install megatron-core==0.16.1). It imports
# megatron/training/arguments.py without megatron/training/__init__.py, which pulls in the whole trainer.
import argparse, sys, types
root = sys.argv[1]
import megatron
pkg = types.ModuleType('megatron.training'); pkg.__path__ = [root + '/megatron/training']
sys.modules['megatron.training'] = pkg
import importlib
u = types.ModuleType('megatron.training.utils')
for n in ('get_device_arch_version', 'update_use_dist_ckpt', 'print_rank_0', 'warn_rank_0'):
    setattr(u, n, lambda *a, **k: None)
sys.modules['megatron.training.utils'] = u
args_mod = importlib.import_module('megatron.training.arguments')
p = argparse.ArgumentParser(allow_abbrev=False)
p = args_mod.add_megatron_arguments(p)
flags = sorted({s for a in p._actions for s in a.option_strings if s.startswith('--')})
open(sys.argv[2], 'w').write('\n'.join(flags) + '\n')
print(len(flags))
