"""Where a decoded prediction's time goes: ``predict`` of the Burgers paper model, 256 paths ×
300 steps with 5 quantiles (the ``ours_decode`` point of ``benchmarks/inference.py``).

Prints and writes ``benchmarks/results/profile_predict_<device>.txt``: the wall clock of the
stages (latent rollout, decoding, moments, observations and quantiles, copies to the host;
synchronised), then torch.profiler's operators by device time.

Usage: python benchmarks/profile_predict.py [--device cuda|cpu] [--paths 256]
       [--cudnn-benchmark] [--tf32-matmul] [--compile default,max-autotune-no-cudagraphs]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from inference import LEVELS, MODEL, load_case  # noqa: E402

from engine import load_model  # noqa: E402
from engine.prediction import sample_quantiles  # noqa: E402


def _timed(device: str, fn, repeats: int = 10) -> tuple[float, object]:
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - start) / repeats, out


def _decode_variants(device: str, model, z: torch.Tensor, reference: torch.Tensor,
                     compile_modes: tuple[str, ...] = ()) -> list[str]:
    """Other ways to decode the same frames: smaller chunks (the activations of a chunk in
    the GPU's cache) and reduced-precision autocast; each with its time and its largest
    difference from the default decoding, relative to the largest |value|."""
    scale = reference.abs().max().item()
    lines = ["## decoding variants (the same frames)", "",
             "| variant | ms | max abs difference / max abs value |", "|---|---:|---:|"]
    variants: list[tuple[str, int | None, torch.dtype | None]] = [
        (f"chunks of {c}", c, None) for c in (4096, 16384)]
    if device == "cuda":
        variants += [("autocast bfloat16", None, torch.bfloat16),
                     ("autocast float16", None, torch.float16),
                     ("autocast float16, chunks of 16384", 16384, torch.float16)]
    runs = []
    for name, chunk, dtype in variants:
        def run(chunk=chunk, dtype=dtype):
            with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
                return model._decode_paths(z, chunk=chunk)
        runs.append((name, run))
    if compile_modes:
        # inductor: bias + activation fused into the convolutions' neighbours, and (with
        # max-autotune) convolution/matmul templates timed for these shapes
        net = model.module_.decoder.net
        for mode in compile_modes:
            compiled = torch.compile(net, mode=None if mode == "default" else mode,
                                     dynamic=False)
            for dtype in (None, torch.float16):
                def run(compiled=compiled, dtype=dtype):
                    with torch.autocast(device, dtype=dtype or torch.float32,
                                        enabled=dtype is not None):
                        return compiled(z)
                label = f"torch.compile {mode}" + (", autocast float16" if dtype else "")
                runs.append((label, run))
    for name, run in runs:
        try:
            start = time.perf_counter()
            run()
            first = time.perf_counter() - start
            ms, out = _timed(device, run)
        except Exception as exc:  # a compiler that is missing or fails: say so, go on
            lines.append(f"| {name} | failed: {type(exc).__name__} | – |")
            continue
        if first > 1.0:
            name += f" (first call {first:.0f} s)"
        diff = (out.float().reshape(reference.shape) - reference).abs().max().item() / scale
        lines.append(f"| {name} | {ms:.2f} | {diff:.2e} |")
    return lines + [""]


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--paths", type=int, default=256)
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN time its convolution algorithms for each new shape "
                             "(torch.backends.cudnn.benchmark) and keep the quickest")
    parser.add_argument("--tf32-matmul", action="store_true",
                        help="allow TF32 tensor cores in float32 matrix products (the drift's "
                             "layers; torch.backends.cuda.matmul.allow_tf32)")
    parser.add_argument("--compile", default="",
                        help="comma-separated torch.compile modes to try on the decoder "
                             "(default, max-autotune-no-cudagraphs, ...)")
    parser.add_argument("--out", default=None, help="results file (default "
                        "benchmarks/results/profile_predict_<device>.txt)")
    args = parser.parse_args()
    device, n = args.device, args.paths
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    torch.backends.cuda.matmul.allow_tf32 = bool(args.tf32_matmul)
    model = load_model(MODEL, device=device)
    x0, mu, t, f = load_case(model)
    lines = [f"# predict profile: {MODEL.name}, {n} paths × {t.size - 1} steps, {device} "
             f"({torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}, torch "
             f"{torch.__version__}{', cudnn.benchmark on' if args.cudnn_benchmark else ''}"
             f"{', TF32 matmul on' if args.tf32_matmul else ''})", ""]

    def whole():
        return model.predict(x0, mu, t, f, n_samples=n, seed=0, return_samples=False,
                             quantiles=LEVELS)

    def latent():
        return model._latent_paths(x0, mu, t, f, n, 0, None, None)[3]

    ms_whole, _ = _timed(device, whole)
    ms_latent, z = _timed(device, latent)
    z = z.reshape(-1, model.latent_dim_)
    ms_decode, decoded = _timed(device, lambda: model._decode_paths(z))
    decoded = decoded.view(1, n, t.size, *model.state_shape_)
    ms_quantiles, _ = _timed(device, lambda: sample_quantiles(decoded, LEVELS, dim=1))
    ms_moments, _ = _timed(device, lambda: (decoded.mean(1), decoded.var(1)))
    ms_copy, _ = _timed(device, lambda: decoded.mean(1).detach().cpu().numpy())
    path = getattr(getattr(model, "_rollout", None), "last_path", "?")
    lines += [f"- whole predict: {ms_whole:.2f} ms",
              f"- latent paths (rollout path: {path}): {ms_latent:.2f} ms",
              f"- decoding {z.shape[0]} frames: {ms_decode:.2f} ms",
              f"- 5 quantiles over the paths (sort): {ms_quantiles:.2f} ms",
              f"- mean and variance over the paths: {ms_moments:.2f} ms",
              f"- one mean field to the host: {ms_copy:.2f} ms", ""]
    lines += _decode_variants(device, model, z, decoded.reshape(z.shape[0], -1),
                              tuple(m for m in args.compile.split(",") if m))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            whole()
        if device == "cuda":
            torch.cuda.synchronize()
    sort = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    lines += ["## operators over 3 calls, by device time", "",
              prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=70)]
    text = "\n".join(lines)
    print(text)
    out = (Path(args.out) if args.out
           else ROOT / "benchmarks" / "results" / f"profile_predict_{device}.txt")
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
