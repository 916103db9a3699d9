#!/usr/bin/env python3
"""Runs ../shared/tools/torch_vgg_iter.py (copied to .device/) once per argument string, in one process: importing
torch and starting CUDA once instead of a dozen times saves a scarce device call tens of seconds.
usage: torch_many.py SCRIPT "ARGS…" "ARGS…" …   (each run's peak memory is its own: the counter is reset between runs)"""
import runpy, sys, torch
script = sys.argv[1]
for args in sys.argv[2:]:
    torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    sys.argv = [script] + args.split()
    try:
        runpy.run_path(script, run_name="__main__")
    except Exception as e:   # one failing size must not hide the others
        print(f"!! torch_vgg_iter.py {args}: {type(e).__name__}: {e}")
    sys.stdout.flush()
