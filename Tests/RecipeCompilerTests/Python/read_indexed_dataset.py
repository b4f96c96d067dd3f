#!/usr/bin/env python3
"""Reads Megatron indexed datasets with megatron-core's own IndexedDataset and prints what it sees as JSON.

Usage: read_indexed_dataset.py PREFIX [PREFIX ...]
Prints {"PREFIX": {"dtype": ..., "sequence_lengths": [...], "document_indices": [...], "tokens": [...],
"same_as_builder": true|false}, ...}, where same_as_builder says whether megatron-core's own IndexedDatasetBuilder,
given the same tokens as one document of the same sequences, writes byte-identical .bin and .idx files;
exit status 3 when megatron-core is not installed (the Swift test skips then).
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")
try:
    import numpy
    from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder
except ImportError as error:
    print(f"megatron-core is not installed: {error}", file=sys.stderr)
    sys.exit(3)

out = {}
for prefix in sys.argv[1:]:
    dataset = IndexedDataset(prefix, multimodal=False, mmap=True)
    tokens = []
    for i in range(len(dataset)):
        tokens.extend(int(t) for t in dataset[i])
    # A window inside sequence 0, read the way GPTDataset reads one: get(idx, offset, length).
    out[prefix] = {
        "dtype": dataset.index.dtype.__name__,
        "sequence_lengths": [int(n) for n in dataset.sequence_lengths],
        "document_indices": [int(d) for d in dataset.document_indices],
        "tokens": tokens,
        "get_0_1_3": [int(t) for t in dataset.get(0, offset=1, length=3)],
    }
    reference = prefix + ".reference"
    builder = IndexedDatasetBuilder(reference + ".bin", dtype=dataset.index.dtype)
    builder.add_document(numpy.array(tokens), [int(n) for n in dataset.sequence_lengths])
    builder.finalize(reference + ".idx")
    same = all(open(prefix + ext, "rb").read() == open(reference + ext, "rb").read() for ext in (".bin", ".idx"))
    out[prefix]["same_as_builder"] = same
print(json.dumps(out))
