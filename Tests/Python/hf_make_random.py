"""Builds a random GPT-2 and a byte-level BPE tokenizer with the Python libraries and saves them to DIR (run by
InterchangeCommandTests): model.save_pretrained (config.json, model.safetensors), tokenizer.json, and GPT-2's
vocab.json + merges.txt in DIR/gpt2-files.

usage: hf_make_random.py DIR TRAINING_TEXT
"""
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

directory, text_path = sys.argv[1], sys.argv[2]
tokenizer = Tokenizer(models.BPE())
tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tokenizer.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tokenizer.train([text_path], trainer)
fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
fast.save_pretrained(directory)
os.makedirs(os.path.join(directory, "gpt2-files"), exist_ok=True)
tokenizer.model.save(os.path.join(directory, "gpt2-files"))

torch.manual_seed(0)
config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=32, vocab_size=tokenizer.get_vocab_size(),
                    bos_token_id=tokenizer.token_to_id("<|endoftext|>"), eos_token_id=tokenizer.token_to_id("<|endoftext|>"))
model = GPT2LMHeadModel(config)
with torch.no_grad():
    for name, p in model.named_parameters():
        p.add_(torch.randn_like(p) * 0.05)  # biases and LayerNorms too, so every tensor matters
model.save_pretrained(directory)
