#!/usr/bin/python3
"""transformers_offload.py — a Llama model's KV cache offloaded to kvtier, dropped, loaded back, generation continued.

Needs a CUDA GPU, torch and transformers (no downloads: the model is a small
random-weight LlamaConfig). Without them it prints "skipped: <reason>" and
exits 0. Run from the source tree:
    PYTHONPATH=python /usr/bin/python3 examples/python/transformers_offload.py

What it checks (float32 model, eager attention):
  - the KV bytes fetched back are bit-identical to the ones offloaded;
  - next-token logits after loading the cache equal those after recomputing
    the same prefix: max |diff| <= 1e-4 (they are normally exactly equal);
  - they match a single full-prompt forward pass within 1e-3 (different
    kernel shapes round differently);
  - 8 greedy tokens generated from the loaded cache equal those from the
    recomputed one.
Blocks are one per 16 tokens, with layers x 2 fragments (K and V of each
layer). Device pointers go to kvtier directly when the library takes them;
otherwise (kvtier.EMEMKIND) through pinned host buffers.
"""
import sys
import time


def skip(reason):
    print(f"skipped: {reason}")
    sys.exit(0)


try:
    import torch
except Exception as e:  # ImportError, or a broken CUDA install
    skip(f"torch is not available ({e.__class__.__name__}: {e})")
try:
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
except Exception as e:
    skip(f"transformers is not available ({e.__class__.__name__}: {e})")
if not torch.cuda.is_available():
    skip("no CUDA device (torch.cuda.is_available() is False)")
try:
    from transformers import DynamicCache
except ImportError:  # transformers < 4.36: caches are tuples
    DynamicCache = None

import kvtier

B = 16              # tokens per block
PROMPT = 200        # 12 full blocks + 8 tokens that are always recomputed
GENERATE = 8
DEV = "cuda"


def layer_kv(cache):
    """[(K, V)] per layer, each (batch, kv_heads, seq, head_dim)."""
    if hasattr(cache, "layers"):          # transformers >= 4.56
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):       # DynamicCache before 4.56
        return list(zip(cache.key_cache, cache.value_cache))
    return [(k, v) for k, v in cache]     # legacy tuples


def make_cache(kv):
    if DynamicCache is None:
        return tuple((k, v) for k, v in kv)
    cache = DynamicCache()
    for layer, (k, v) in enumerate(kv):
        cache.update(k, v, layer)
    return cache


def sync():
    torch.cuda.synchronize()


def block_fragments(kv, nblocks):
    """Per block, its layers x 2 fragments (K then V of each layer), contiguous."""
    return [[t[:, :, i * B:(i + 1) * B, :].contiguous() for k, v in kv for t in (k, v)]
            for i in range(nblocks)]


def offload(store, keys, blocks):
    try:
        return store.put(keys, blocks), "device pointers"
    except kvtier.EMEMKIND:
        host = [[t.cpu() for t in blk] for blk in blocks]
        return store.put(keys, host), "pinned host staging (this kvtier takes no device pointers)"


def load(store, keys, like):
    """Fetches blocks into fresh GPU fragments shaped like `like`."""
    dst = [[torch.empty_like(t) for t in like] for _ in keys]
    try:
        got = store.get(keys, dst)
    except kvtier.EMEMKIND:
        host = [[torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in like]
                for _ in keys]
        got = store.get(keys, host)
        dst = [[h.to(DEV, non_blocking=True) for h in blk] for blk in host]
    assert got == len(keys), got.status
    return dst


def assemble(blocks, layers):
    return [(torch.cat([blk[2 * l] for blk in blocks], dim=2),
             torch.cat([blk[2 * l + 1] for blk in blocks], dim=2)) for l in range(layers)]


def greedy(model, cache, first_logits, steps):
    out, logits = [], first_logits
    for _ in range(steps):
        tok = logits[:, -1].argmax(-1, keepdim=True)
        out.append(int(tok))
        res = model(input_ids=tok, past_key_values=cache, use_cache=True)
        cache, logits = res.past_key_values, res.logits
    return out


@torch.no_grad()
def main():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=1024, hidden_size=256, intermediate_size=512,
                      num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, attn_implementation="eager")
    model = LlamaForCausalLM(cfg).to(DEV, torch.float32).eval()
    layers = cfg.num_hidden_layers
    prompt = torch.randint(0, cfg.vocab_size, (1, PROMPT), device=DEV)
    nblocks = PROMPT // B
    full = nblocks * B

    ns = kvtier.Namespace(model="random-llama-seed0", layout=f"fp32;HND;B={B};layers={layers}")
    keys = kvtier.keys(prompt[0].cpu().numpy().astype("uint32"), ns, B)
    assert len(keys) == nblocks

    # prefill the cacheable prefix, offload its blocks, drop the cache
    kv = layer_kv(model(input_ids=prompt[:, :full], use_cache=True).past_key_values)
    blocks = block_fragments(kv, nblocks)
    frag_bytes = blocks[0][0].numel() * blocks[0][0].element_size()
    originals = [[t.cpu() for t in blk] for blk in blocks]
    like = blocks[0]
    with kvtier.Store(block_bytes=frag_bytes * 2 * layers, frags=2 * layers,
                      block_tokens=B, dram_bytes=4 * nblocks * frag_bytes * 2 * layers) as store:
        stored, path = offload(store, keys, blocks)
        assert stored == nblocks, stored.status
        del kv, blocks
        torch.cuda.empty_cache()

        # a new request with the same prompt: load the prefix instead of computing it
        sync()
        t0 = time.perf_counter()
        hits, _ = store.lookup(keys)
        fetched = load(store, keys[:hits], like)
        cache = make_cache(assemble(fetched, layers))
        sync()
        t_load = time.perf_counter() - t0
        assert hits == nblocks
        for blk, orig in zip(fetched, originals):
            for t, o in zip(blk, orig):
                assert torch.equal(t.cpu(), o), "fetched KV bytes differ from the offloaded ones"
        loaded = model(input_ids=prompt[:, full:], past_key_values=cache, use_cache=True)

    # the reference: recompute the same prefix
    sync()
    t0 = time.perf_counter()
    ref_cache = model(input_ids=prompt[:, :full], use_cache=True).past_key_values
    sync()
    t_recompute = time.perf_counter() - t0
    ref = model(input_ids=prompt[:, full:], past_key_values=ref_cache, use_cache=True)
    whole = model(input_ids=prompt, use_cache=False)

    a, b = loaded.logits[:, -1].float(), ref.logits[:, -1].float()
    diff = (a - b).abs().max().item()
    diff_whole = (a - whole.logits[:, -1].float()).abs().max().item()
    assert diff <= 1e-4, f"logits differ from the recomputed prefix by {diff}"
    assert diff_whole <= 1e-3, f"logits differ from a full forward pass by {diff_whole}"
    gen_loaded = greedy(model, loaded.past_key_values, loaded.logits, GENERATE)
    gen_ref = greedy(model, ref.past_key_values, ref.logits, GENERATE)
    assert gen_loaded == gen_ref, f"generation differs: {gen_loaded} vs {gen_ref}"

    print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name()}; kvtier {kvtier.library_version} via {path}")
    print(f"{nblocks} blocks x {2 * layers} fragments of {frag_bytes} bytes; "
          f"load {t_load * 1e3:.2f} ms vs recompute {t_recompute * 1e3:.2f} ms")
    print(f"max |logit diff| vs recomputed prefix {diff:.3g} (<= 1e-4), "
          f"vs full forward {diff_whole:.3g} (<= 1e-3); generated {gen_loaded}")
    print("ok: loaded KV cache continues generation exactly like a recomputed one")


if __name__ == "__main__":
    main()
