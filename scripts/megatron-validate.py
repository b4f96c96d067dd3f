#!/usr/bin/env python3
# Parses and validates an exported train.sh's arguments with Megatron-LM's own parse_args + validate_args, as
# pretrain_gpt.py would before it starts, and prints what Megatron derives (data parallel size, dtype, ...).
# Usage: python3 scripts/megatron-validate.py MEGATRON_LM_CHECKOUT DIR/train.sh WORLD_SIZE
# (megatron-core of the checkout's release installed; no GPU needed). It imports megatron/training/arguments.py
# without megatron/training/__init__.py, which pulls in the whole trainer.
import os, shlex, sys, types, importlib, warnings
warnings.filterwarnings('ignore')
root, script, world = sys.argv[1], sys.argv[2], sys.argv[3]
import megatron
pkg = types.ModuleType('megatron.training'); pkg.__path__ = [root + '/megatron/training']
sys.modules['megatron.training'] = pkg
u = types.ModuleType('megatron.training.utils')
u.get_device_arch_version = lambda: 8
u.update_use_dist_ckpt = lambda args: setattr(args, 'use_dist_ckpt', args.ckpt_format != 'torch')
u.print_rank_0 = lambda *a, **k: None
u.warn_rank_0 = lambda *a, **k: None
u.is_rank0 = lambda: False
sys.modules['megatron.training.utils'] = u
A = importlib.import_module('megatron.training.arguments')
text = open(script).read()
body = text[text.index('ARGS=(') + 6:text.index('\n)\n')]
argv = shlex.split(body)
for line in text.splitlines():
    if line.startswith('export '):
        name, value = line[len('export '):].split('=', 1)
        os.environ[name] = value
os.environ['WORLD_SIZE'] = world; os.environ['RANK'] = '0'
sys.argv = ['pretrain_gpt.py'] + argv
args = A.parse_args()
A.validate_args(args)
for k in ['num_layers', 'hidden_size', 'num_attention_heads', 'ffn_hidden_size', 'seq_length', 'max_position_embeddings',
          'micro_batch_size', 'global_batch_size', 'data_parallel_size', 'train_iters', 'lr', 'min_lr', 'lr_warmup_iters',
          'lr_warmup_init', 'lr_decay_iters', 'lr_decay_style', 'weight_decay', 'adam_beta1', 'adam_beta2', 'adam_eps', 'clip_grad',
          'hidden_dropout', 'attention_dropout', 'add_bias_linear', 'untie_embeddings_and_output_weights', 'position_embedding_type',
          'normalization', 'bf16', 'params_dtype', 'use_distributed_optimizer', 'recompute_granularity', 'tensor_model_parallel_size',
          'pipeline_model_parallel_size', 'make_vocab_size_divisible_by', 'tokenizer_type', 'vocab_size', 'eval_iters', 'eval_interval', 'seed']:
    print(f'{k} = {getattr(args, k, None)}')
