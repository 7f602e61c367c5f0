"""The three batched products of a hidden layer in a 50-run stack (one torch thread), as the compiled
step calls them: the forward baddbmm (bias + W h), the input gradient W^T g, and the weight
gradient g h^T, for 100 points and widths around the paper's 35. They are most of the compiled step
(benchmarks/README.md), so this table says what any width padding could gain.

Run: .venv/bin/python benchmarks/small_gemm.py"""

import time

import torch

RUNS, POINTS = 50, 100
WIDTHS = (15, 16, 23, 24, 31, 32, 33, 34, 35, 36, 37, 38, 40, 47, 48)


def best_us(product, calls: int = 100, repeats: int = 7) -> float:
    for _ in range(5):
        product()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            product()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def layer_products(width: int) -> tuple[float, float, float]:
    """Microseconds of the forward, input-gradient and weight-gradient products at this width."""
    weight, bias = torch.randn(RUNS, width, width), torch.randn(RUNS, width, 1)
    h, g = torch.randn(RUNS, width, POINTS), torch.randn(RUNS, width, POINTS)
    out, out_weight = torch.empty(RUNS, width, POINTS), torch.empty(RUNS, width, width)
    forward = best_us(lambda: torch.baddbmm(bias.expand(RUNS, width, POINTS), weight, h, out=out))
    input_grad = best_us(lambda: torch.bmm(weight.transpose(1, 2), g, out=out))
    weight_grad = best_us(lambda: torch.bmm(g, h.transpose(1, 2), out=out_weight))
    return forward, input_grad, weight_grad


def main() -> None:
    torch.set_num_threads(1)
    print("| width | forward (us) | input gradient (us) | weight gradient (us) | sum (us) | GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for width in WIDTHS:
        times = layer_products(width)
        flop = 3 * 2 * RUNS * width * width * POINTS
        cells = " | ".join(f"{t:.0f}" for t in times)
        print(f"| {width} | {cells} | {sum(times):.0f} | {flop / sum(times) / 1e3:.0f} |", flush=True)


if __name__ == "__main__":
    main()
