"""Every ``analyses/benchmark_*.py --quick`` end to end, run from an empty ``tmp_path``: the tables it prints
are complete, their numbers parse and are finite, and it writes nothing there but the runs it is told to train."""
import importlib
import math
import re
import sys

import pytest

PEERS = {"hessian_eigenthings": "hessian-eigenthings", "curvlinops": "curvlinops"}   # benchmark_solvers' optional


def parse(lines: list[str], pattern: str) -> list[tuple[str, list[float]]]:
    """Each line, which must match ``pattern`` in full: its first group, and the other groups as finite floats."""
    rows = []
    for line in lines:
        match = re.fullmatch(pattern, line)
        assert match, f"{line!r} does not match {pattern!r}"
        name, *groups = match.groups()
        values = [float(g) for g in groups]
        assert all(math.isfinite(v) for v in values), line
        rows.append((name, values))
    return rows


def importable(name: str) -> bool:
    """Whether ``import name`` succeeds, as the benchmark's own optional imports do."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def matching(out: str, pattern: str) -> list[str]:
    """The lines of ``out`` that start with a match of ``pattern``."""
    return [line for line in out.splitlines() if re.match(pattern, line)]


def block(out: str, title: str) -> list[str]:
    """The lines of ``out`` after the first line that matches the pattern ``title`` in full, up to a blank line."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(title, line)) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run from an empty ``tmp_path``: a file written to a relative default path lands there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_products_quick_prints_each_product_cost_and_ratio(run_script, capsys, in_tmp, one_thread):
    run_script("benchmark_products", "--quick")
    out = capsys.readouterr().out
    assert "1 threads, float32" in out and "best of 1 interleaved rounds" in out
    for model in ("MNIST-1D MLP", "CNN with BatchNorm (eval)"):
        lines = block(out, rf"{re.escape(model)}, \d+ parameters")
        costs = [line for line in lines if line.endswith(" x gradient")]
        rows = parse(costs, r"  (\S.*?)\s+(\S+) ms\s+(\S+) x gradient")
        assert len(rows) == 15 and rows[0][0] == "gradient" and rows[0][1][1] == 1.0   # the unit
        assert all(ms > 0 and ratio > 0 for _, (ms, ratio) in rows)
        ratios = parse(lines[lines.index(" ratios of time per vector (> 1: landscape is cheaper):") + 1:],
                       r"  (\S.*?)\s+(\S+)")
        assert len(ratios) == 7 and all(value > 0 for _, (value,) in ratios)
    assert not any(in_tmp.iterdir())


def test_interpolation_quick_prints_cost_per_alpha_with_and_without_batchnorm(run_script, capsys, in_tmp, one_thread):
    run_script("benchmark_interpolation", "--quick")
    out = capsys.readouterr().out
    assert "3 α, best of 1 interleaved rounds" in out
    row = r"  (\S.*?)\s+(\S+) ms per α\s+(\S+) x forward\s+(\S+) x evaluate"
    plain = parse(block(out, "cnn1d"), row)
    assert [name for name, _ in plain] == ["forward", "evaluate", "interpolate"]
    lines = block(out, "cnn1d with BatchNorm")
    batchnorm = parse(lines[:-1], row)
    assert [name for name, _ in batchnorm] == ["forward", "evaluate", "BN reset", "interpolate, batchnorm=interpolate",
                                               "interpolate, batchnorm=reset"]
    assert all(v > 0 for _, values in plain + batchnorm for v in values)
    assert parse(lines[-1:], r"  (interpolate, reset / \(evaluate \+ BN reset\))\s+(\S+)")[0][1][0] > 0
    assert not any(in_tmp.iterdir())


def test_instruments_quick_trains_into_runs_dir_and_prints_three_parts(run_script, capsys, in_tmp, one_thread):
    runs = in_tmp / "runs"
    run_script("benchmark_instruments", "--quick", "--runs-dir", str(runs))
    out = capsys.readouterr().out
    saddle = parse([line for line in out.splitlines() if line.startswith(("| mnist1d", "| digits"))],
                   r"\| (\w+) \(n=\d+\) \| (\S+) \| (\S+) \| [\w-]+ \| (\S+) \| (\S+) \| (\S+) \| (\S+) \| (\S+) \|")
    assert len(saddle) == 2 * 3 * 4   # models x tolerances x methods
    for _, (tol, exact, estimate, mean_error, max_error, stderr, matvecs) in saddle:
        assert tol in (1e-2, 1e-3, 1e-4) and 0 <= exact <= 1 and 0 <= estimate <= 1
        assert 0 <= mean_error <= max_error and stderr >= 0 and matvecs > 0
    assert "final weights bit-identical: True" in out
    overhead = parse(re.findall(r"overhead \S+x \(CPU\), \S+x \(wall\)", out),
                     r"(overhead) (\S+)x \(CPU\), (\S+)x \(wall\)")
    assert len(overhead) == 1 and all(v > 0 for v in overhead[0][1])
    warm = parse(re.findall(r"total over .* fewer when warm", out),
                 r"total over (\d+) consecutive measurements: cold (\d+), warm (\d+) matvecs: (\S+)x fewer when warm")
    assert len(warm) == 2 and all(int(n) > 0 and min(values) > 0 for n, values in warm)
    assert [p.name for p in in_tmp.iterdir()] == ["runs"]
    assert sorted(p.name for p in runs.iterdir()) == ["overhead_tracked", "overhead_untracked", "saddle_digits",
                                                      "saddle_mnist1d", "warm"]


@pytest.mark.parametrize("peers", ["as installed", "absent"])
def test_solvers_quick_reaches_the_target_and_prints_every_task(run_script, capsys, in_tmp, one_thread, monkeypatch,
                                                                peers):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")   # what the script sets at import, undone after the test
    present = {name: peers == "as installed" and importable(name) for name in PEERS}
    if peers == "absent":
        for name in PEERS:
            monkeypatch.setitem(sys.modules, name, None)   # `import name` raises ImportError
    run_script("benchmark_solvers", "--quick")
    out = capsys.readouterr().out
    for name, label in PEERS.items():
        assert (f"NOTE: {label} is not installed" in out) != present[name]
        skipped = matching(out, rf"    {label}.* not installed: when installed$")
        assert len(skipped) == (0 if present[name] else 2 * 2)   # models x (top, bottom)
    reference = parse(re.findall(r"lambda_max .*", out),
                      r"(lambda_max) (\S+), lambda_min (\S+), trace (\S+), fraction below -1e-3\|lambda\|max (\S+)")
    assert len(reference) == 2
    assert all(lmax > 0 > lmin and 0 < fraction < 1 for _, (lmax, lmin, _, fraction) in reference)
    eigs = r"    landscape eigs +(criterion=\S+ tol=[^ ,]+(?:, lean build)?) +\d+ +"
    timed = parse(matching(out, rf"{eigs}\d"), rf"{eigs}(\S+) +(\S+) +(\S+) +1  .*")
    assert len(timed) == 2 * 2 * 2   # models x (top, bottom) x (default, lean build)
    assert all(wall > 0 and build >= 0 and error <= 1e-4 for _, (wall, build, error) in timed)
    for title in ("[1] top-5", "[2] five most negative", "[3] trace", "[4] SLQ", "[5] Hessian products"):
        assert out.count(f"\n  {title}") == 2, title
    estimates = parse(matching(out, "    landscape trace "),
                      r"    (landscape trace \S+(?: \(default\))?) +(\S+) +(\S+) +(\S+) +(\S+) +(\S+) +(\S+) \+- (\S+)")
    assert len(estimates) == 2 * 3   # models x (xtrace, hutch++, hutchinson)
    assert all(spread > 0 and stderr > 0 and 0 <= covered <= 1
               for _, (_, spread, _, _, stderr, covered, _) in estimates)
    products = parse(matching(out, r".* ms .* x landscape matmat\(10\) uncached$"),
                     r"    (\S.*?) +(\S+) ms +(\S+) x landscape matmat\(10\) uncached")
    assert len(products) == 2 * (5 + present["hessian_eigenthings"] + 2 * present["curvlinops"])
    assert all(ms > 0 for _, (ms, _) in products)
    call = parse(matching(out, r"\[0\] first default call"),
                 r"\[0\] (first default call) eigs\(.*\) in a fresh process: (\S+) s \((\d+) matvecs\); tuned solve "
                 r"(\S+) s \((\d+) matvecs, best of 1\)")
    assert len(call) == 1 and all(value > 0 for value in call[0][1])
    targets = out.split("\nTargets (issue 3), measured in this run:\n", 1)[1]
    assert "\n  First default call (issue 17)\n    first default call / tuned solve <= 1.5: " in targets
    assert targets.count("\n    top-5 ") >= 2
    for target in ("bottom-5 at each library's defaults", "trace spread", "trace 2-stderr coverage",
                   "density negative mass", "10 batches, per vector"):
        assert targets.count(f"\n    {target}") == 2, target
    assert not any(in_tmp.iterdir())


def test_scale_quick_agrees_across_processes_and_ranks(run_script, capsys, in_tmp, one_thread):
    run_script("benchmark_scale", "--quick", "--threads", "1")
    out = capsys.readouterr().out
    size = re.search(r"ResNet-18 \(CIFAR form, width (\d+)\), ([\d,]+) parameters, float32; N=(\d+) random", out)
    assert size and min(int(g.replace(",", "")) for g in size.groups()) > 0
    lines = block(out, "Part 1: .*")[1:4]
    part1 = parse(lines, r"  (\S.*?) +(\S+)/ *(\S+) +(\S+)/ *(\S+) +(\d+) +(\S+) +(\S+) +(\S+) +(\S+)"
                         r"(?:  \(not converged\))?")
    assert [name.split("(")[0] for name, _ in part1] == ["landscape eigs", "landscape eigs", "PyHessian eigenvalues"]
    for _, (*seconds, products, eigenvalue, residual, peak, _) in part1:
        assert min(seconds) >= 0 and products > 0 and eigenvalue > 0 and residual >= 0 and peak > 0
    (_, ours), (_, low), _ = part1
    assert "(not converged)" not in lines[0] and ours[6] <= 1e-3   # eigs(tol=1e-3) converges on this residual
    assert abs(low[5] - ours[5]) <= 1e-2 * ours[5]                 # tol=1e-2 with the bfloat16 basis
    ranks = re.search(r"ranks (\S+), (\S+) \(identical: True\); relative difference (\S+)", out)
    assert ranks and float(ranks[1]) == float(ranks[2]) and float(ranks[3]) <= 1e-4
    assert not any(in_tmp.iterdir())


def test_gpu_quick_prints_one_table_with_every_measurement(run_script, capsys, in_tmp, one_thread):
    run_script("benchmark_gpu", "--quick")
    out = capsys.readouterr().out
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model "))
    table = lines[start + 1:-1]
    assert re.fullmatch(r"total \d+ s", lines[-1])
    call = parse([table[0]], r"(MLP 7,354 parameters), 200 samples +float32 +first call +landscape +(\d+) +(\S+) +n/a"
                             r" +- +(\S+) x the tuned solve \((\S+) s\); .*")
    assert all(value > 0 for value in call[0][1])
    body = table[1:]
    if not importable("transformers"):   # the GPT-2-shaped model is built by transformers
        assert re.fullmatch(r"GPT-2 shape .* all .* absent \(.*", body[-1])
        body = body[:-1]
    row = r"(.+?) {2,}(float32|bfloat16) +(.+?) {2,}(\S.*?)? +(\S+) +(\S+) +n/a +(\S+)  (.*)"
    rows = [re.fullmatch(row, line) for line in body]
    assert all(rows), [line for line, match in zip(body, rows) if not match]
    by_key = {(m[1], m[2], m[3].strip(), (m[4] or "").strip()): m for m in rows}
    models = sorted({m[1] for m in rows})
    assert len(models) == 1 + importable("transformers") and any(name.startswith("ResNet-18") for name in models)
    for model in models:
        for dtype in ("float32", "bfloat16"):
            gradient = by_key[model, dtype, "gradient", ""]
            assert float(gradient[6]) > 0
            for method in ("reverse", "forward"):
                note = by_key[model, dtype, f"HVP {method}", ""][8]
                ratios = re.fullmatch(r"(\S+) / (\S+) x grad \(1 / per vector of 8\)", note)
                if dtype == "bfloat16" and method == "forward" and note.startswith("failed: "):
                    continue   # vmapped forward mode overflows in bfloat16 on some models: reported, not hidden
                assert ratios and min(float(ratios[1]), float(ratios[2])) > 0, note
            assert "not measured in --quick" in by_key[model, dtype, "HVP forward, compiled", ""][8]
            ours = by_key[model, dtype, "top-5", "landscape"]
            assert int(ours[5]) > 0 and float(ours[6]) > 0 and "; converged;" in ours[8]
            if dtype == "float32":
                assert float(ours[7]) <= 2e-3   # tol=1e-3 on the recurrence; the recomputed one agrees
            peer = by_key[model, dtype, "top-5", "PyHessian"]
            assert int(peer[5]) > 0 and float(peer[7]) >= 0
            he = by_key[model, dtype, "top-5", "hessian-eigenthings"]
            assert he[8].startswith("absent") != importable("hessian_eigenthings")
            estimate = re.match(r"(\S+) \+- (\S+); xtrace", by_key[model, dtype, "trace", "landscape"][8])
            assert estimate and math.isfinite(float(estimate[1])) and float(estimate[2]) > 0
    assert not any(in_tmp.iterdir())


def test_certification_quick_prints_every_variant_and_no_silent_row(run_script, capsys, in_tmp, one_thread):
    run_script("benchmark_certification", "--quick")
    out = capsys.readouterr().out
    rows = matching(out, r"^  (largest|smallest) +1e-0[34] ")
    assert len(rows) == 2 * 2 * 2 * 3   # models x ends x tols x variants
    assert "SILENT" not in out
    certified = [row for row in rows if " uncertified " not in row]
    assert all(" 3/3 " in row for row in certified)
    for row in rows:   # three seeds; the uncertified solves run no verification pass, the certified ones do
        passes = [int(c) for c in re.findall(r"\d+ \((\d+)\)", row)]
        assert len(passes) == 3 and (all(p == 0 for p in passes) if " uncertified " in row else min(passes) > 0)
