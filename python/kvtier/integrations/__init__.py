"""kvtier.integrations — glue between inference engines and a kvtier Store.

    keyfold   folding the engines' own block keys into kvtier keys (kvt_key_fold)
    sglang    an SGLang HiCache storage backend (HiCacheStorage)
    lmcache   an LMCache remote connector
    vllm      a vLLM offloading spec (OffloadingSpec, manager, transfer handlers)

Nothing here imports an engine: each adapter is written against the engine's
interface at the commit docs/engines.md names, and duck-types what the engine
passes in, so it can be loaded by the engine and tested without it.
"""
