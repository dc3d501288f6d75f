"""Where a SiamRPN checkpoint's hardest negative anchors lie, relative to the target, on training pairs.

For each positive pair drawn as training draws them (``RPN_PAIRS``), every anchor with IoU < 0.3 is a negative; its
cross-entropy under the checkpoint ranks it, and the ``--hard`` highest are the pair's hardest (what the rpn-ohem
loss mines). The script prints, for distances of 0.5-2 target sizes (``√(w·h)``) between an anchor's centre and the
target's, the share of the hardest negatives and of all negatives that lie that close::

    python benchmarks/rpn_hard_negatives.py --checkpoint CKPT --data synthetic:runs/bench-data/synth-train-seed11-8x60

A share of the hardest well above that of all negatives means the mining spends its weight on the target's own
surroundings (``benchmarks/results/rpn-hard-min-dist/``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a SiamRPN checkpoint (.safetensors)")
    ap.add_argument("--data", required=True, help="training sequences, e.g. synthetic:DIR")
    ap.add_argument("--batches", type=int, default=6, help="batches of --batch-size pairs (default 6)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--hard", type=int, default=32, help="hardest negatives per pair (default 32, rpn-ohem's)")
    ap.add_argument("--seed", type=int, default=5, help="the pair sampler's seed")
    ap.add_argument("--frame-stride", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the shares as JSON here")
    args = ap.parse_args(argv)
    if min(args.batches, args.batch_size, args.hard) < 1:
        sys.exit("--batches, --batch-size and --hard must be >= 1")

    import numpy as np
    import torch

    from edgetrack.data import open_dataset
    from edgetrack.models.pairs import CropCache, PairSampler
    from edgetrack.models.rpn_targets import RPN_PAIRS, anchor_distance, anchor_iou
    from edgetrack.models.torch.siamrpn import load_siamrpn
    from edgetrack.tracking.siamrpn import anchor_grid

    model = load_siamrpn(args.checkpoint).eval()
    anchors = anchor_grid(model.config.tracking_params())
    cache = CropCache.build(open_dataset(args.data), RPN_PAIRS, progress=False, frame_stride=args.frame_stride)
    sampler = PairSampler(cache, RPN_PAIRS, seed=args.seed)
    hard_d, hard_p, all_d = [], [], []
    for index in range(args.batches):
        batch = sampler.sample_at(index, args.batch_size)
        with torch.no_grad():
            cls, _ = model(torch.from_numpy(batch["z"]), torch.from_numpy(batch["x"]))
        n, a2, r, _ = cls.shape
        prob = torch.softmax(cls.reshape(n, 2, a2 // 2, r, r), 1)[:, 1].numpy().reshape(n, -1)
        for i in range(n):
            if batch["negative"][i]:
                continue
            box = batch["box"][i]
            dist = anchor_distance(anchors, box).reshape(-1)
            neg = np.flatnonzero(anchor_iou(anchors, box).reshape(-1) < 0.3)
            hardest = neg[np.argsort(-prob[i][neg], kind="stable")[:args.hard]]  # CE of a negative rises with p
            hard_d.append(dist[hardest])
            hard_p.append(prob[i][hardest])
            all_d.append(dist[neg])
    hard_d, hard_p, all_d = (np.concatenate(v) for v in (hard_d, hard_p, all_d))
    rows = [{"within": t, "hardest": float(np.mean(hard_d < t)), "all_negatives": float(np.mean(all_d < t))}
            for t in (0.5, 1.0, 1.5, 2.0)]
    print(f"{len(hard_d) // args.hard} positive pairs, the {args.hard} hardest negatives of each")
    print("| centre within (target sizes) | hardest negatives | all negatives |\n|---|--:|--:|")
    for row in rows:
        print(f"| {row['within']:g} | {row['hardest']:.0%} | {row['all_negatives']:.1%} |")
    print(f"hardest negatives' target probability: median {np.median(hard_p):.2f}, above 0.5 in "
          f"{np.mean(hard_p > 0.5):.0%}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "data": args.data, "rows": rows,
                                        "median_probability": float(np.median(hard_p))}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
