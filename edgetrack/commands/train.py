"""``edgetrack train``: train a tracker model with PyTorch or MindSpore on data sets named by spec.

The command only parses and dispatches: :data:`MODELS` maps a model name to its family and :data:`TRAINERS` a
(family, framework) pair to a ``"module:function"`` that takes the parsed arguments. A new family (siamrpn-eca,
deblurgan-v2) plugs in by adding rows there; the trainers import their framework themselves, so this module (and
``edgetrack --help``) needs neither.

Several GPUs or processes: ``torchrun --nproc_per_node N -m edgetrack train ...`` (the PyTorch trainer reads
torchrun's environment and runs DistributedDataParallel).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
from pathlib import Path

from edgetrack.errors import EdgetrackError, InvalidArgumentError, MissingDependencyError, UnknownChoiceError

# model name -> family
MODELS: dict[str, str] = {
    "siamfc-hsm": "siamfc",
    "siamfc": "siamfc",
    "siamfc-hsm-half": "siamfc",
    "siamfc-hsm-quarter": "siamfc",
    "siamfc-tiny": "siamfc",
    "siamrpn-eca": "siamrpn",
    "siamrpn-eca-lite": "siamrpn",
    "siamrpn-alexnet": "siamrpn",
    "siamrpn-tiny": "siamrpn",
    "siamrpn-reuse": "siamrpn",
    "siamrpn-reuse-tiny": "siamrpn",
    "deblurgan-v2": "deblurgan",
    "deblurgan-lite": "deblurgan",
    "deblurgan-tiny": "deblurgan",
}

# family -> framework -> "module:function" taking the argparse Namespace. The PyTorch trainer serves both Siamese
# families through its per-family hooks; DeblurGAN-v2 has its own (a GAN on blurred/sharp pairs).
TRAINERS: dict[str, dict[str, str]] = {
    "siamfc": {
        "torch": "edgetrack.models.torch.train:train_from_args",
        "mindspore": "edgetrack.models.mindspore.train:train_from_args",
    },
    "siamrpn": {
        "torch": "edgetrack.models.torch.train:train_from_args",
        "mindspore": "edgetrack.models.mindspore.train:train_from_args",
    },
    "deblurgan": {
        "torch": "edgetrack.models.torch.deblur_train:train_from_args",
        "mindspore": "edgetrack.models.mindspore.deblur_train:train_from_args",
    },
}

FRAMEWORK_PACKAGES = {"torch": ("torch", "torch"), "mindspore": ("mindspore", "mindspore")}


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a tracker (HSM-SiamFC, SiamFC, SiamRPN) or the DeblurGAN-v2 deblurrer, with PyTorch or MindSpore",
        description="Train a model on tracking data sets: pairs of frames of one video, cropped once into a cache "
        "(reused with --cache), augmented (scale, stretch, shift, colour, grey, motion blur), SGD with a geometric "
        "learning rate. Writes config.json, log.jsonl, checkpoints/epoch-N.safetensors and final.safetensors into "
        "--out. Several GPUs: torchrun --nproc_per_node N -m edgetrack train ...",
        epilog="example: edgetrack train --model siamfc-hsm --data synthetic:data/synth --out runs/hsm --device cuda",
    )
    p.add_argument("--model", default="siamfc-hsm", metavar="NAME",
                   help=f"model to train: {', '.join(MODELS)} (default: siamfc-hsm)")
    p.add_argument("--framework", default="torch", metavar="NAME", help="torch (default) or mindspore")
    p.add_argument("--data", action="append", default=[], metavar="SPEC",
                   help="training data KIND:PATH[#SUBSET], repeatable; synthetic:DIR uses both variants "
                   "(sharp and blurred)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="run folder (checkpoints, log)")
    p.add_argument("--epochs", type=int, default=None, metavar="N", help="epochs (default 50, the paper's)")
    p.add_argument("--steps-per-epoch", type=int, default=None, metavar="N",
                   help="steps per epoch (default: one pair per cropped frame)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="pairs per step and process (default 8)")
    p.add_argument("--lr-start", type=float, default=None, metavar="LR", help="first learning rate (default 1e-2)")
    p.add_argument("--lr-end", type=float, default=None, metavar="LR", help="last learning rate (default 1e-5)")
    p.add_argument("--loss", default=None, metavar="NAME",
                   help="hsm or logistic for SiamFC models (default: logistic for siamfc, hsm for the others); "
                   "for SiamRPN models rpn (the default: cross-entropy on 64 sampled anchors per pair), rpn-hsm "
                   "(the HSM loss on every anchor) or rpn-ohem (online hard negative mining: cross-entropy on the "
                   "sampled positives, a few random negatives and each pair's hardest negatives by their current "
                   "loss, so look-alikes and clutter in the search crop are trained against)")
    p.add_argument("--neg-random", type=int, default=None, metavar="N",
                   help="rpn-ohem: negatives drawn at random per pair, keeping the background calibrated "
                   "(default 16)")
    p.add_argument("--neg-hard", type=int, default=None, metavar="N",
                   help="rpn-ohem: hardest negatives per pair, by their current loss (default 32)")
    p.add_argument("--hard-min-dist", type=float, default=None, metavar="D",
                   help="rpn-ohem: take the hardest negatives only D target sizes or more from the target's centre, "
                   "so mining trains against look-alikes and clutter rather than the target's own surroundings "
                   "(default 0: anywhere)")
    p.add_argument("--alpha", type=float, default=None, help="HSM loss alpha (default 0.6)")
    p.add_argument("--gamma", type=float, default=None, help="HSM loss gamma (default 2)")
    p.add_argument("--reg-weight", type=float, default=None, metavar="LAMBDA",
                   help="SiamRPN: weight of the regression loss (default 1.2)")
    p.add_argument("--device", default=None, metavar="DEV", help="cpu (default) or cuda; no silent fallback")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes that crop frames and make pairs (default 0: in the training process)")
    p.add_argument("--seed", type=int, default=None, help="seed of initial weights and pairs (default 0)")
    p.add_argument("--cache", type=Path, default=None, metavar="PATH",
                   help="crop cache file (.npz): read if it exists, else written after cropping --data")
    p.add_argument("--frame-stride", type=int, default=None, metavar="N",
                   help="crop only every N-th annotated frame (long videos; default 1)")
    p.add_argument("--init-backbone", default=None, metavar="DEBLUR",
                   help="siamrpn-reuse models: copy this trained DeblurGAN-v2 checkpoint's generator encoder and FPN "
                   "(deblurgan-lite's for siamrpn-reuse, deblurgan-tiny's for siamrpn-reuse-tiny) into the trunk; "
                   "recorded in the checkpoints' backbone_init")
    p.add_argument("--freeze-backbone", action="store_true", default=None,
                   help="with --init-backbone: keep the copied trunk fixed (pure reuse of the deblurrer's features: "
                   "only the RPN head trains); without it the trunk is fine-tuned")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--amp", action="store_true", default=None, help="bf16 autocast (CUDA only)")
    p.add_argument("--channels-last", action="store_true", default=None, help="channels-last memory format")
    p.add_argument("--log-every", type=int, default=None, metavar="N", help="steps per log line (default 10)")
    p.add_argument("--crop-size", type=int, default=None, metavar="N",
                   help="deblurgan: side of the training crops (default 255, the tracker's search crop)")
    p.add_argument("--eval-data", action="append", default=[], metavar="SPEC",
                   help="deblurgan: held-out blurred/sharp pairs for PSNR/SSIM, repeatable (default: the last "
                   "tenth of the --data sequences)")
    p.add_argument("--content", default=None, metavar="SPEC",
                   help="deblurgan: content loss, L1 + SSIM + edge (default), plus a tracker's features with "
                   "perceptual:SIAMFC_CHECKPOINT")
    p.set_defaults(func=run)


def trainer_for(model: str, framework: str):
    """The ``train_from_args`` function for ``model`` under ``framework``, or a typed error saying why not."""
    if model not in MODELS:
        raise UnknownChoiceError("model", model, MODELS, fix="pick one with --model")
    family = MODELS[model]
    frameworks = TRAINERS.get(family, {})
    if framework not in FRAMEWORK_PACKAGES:
        raise UnknownChoiceError("framework", framework, FRAMEWORK_PACKAGES, fix="pick one with --framework")
    if framework not in frameworks:
        raise EdgetrackError(f"{model} cannot be trained with {framework} yet",
                             fix=f"use --framework {' or '.join(frameworks) or '(none available)'}")
    module_name, func = frameworks[framework].split(":")
    package, extra = FRAMEWORK_PACKAGES[framework]
    try:
        installed = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        raise MissingDependencyError(f"training {model} with {framework}", package, extra=extra)
    try:
        spec = importlib.util.find_spec(module_name)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        raise EdgetrackError(f"this edgetrack has no {framework} trainer for {model} ({module_name} is missing)",
                             fix="use --framework torch, or update edgetrack")
    return getattr(importlib.import_module(module_name), func)


def run(args: argparse.Namespace) -> int:
    train_from_args = trainer_for(args.model, args.framework)
    if MODELS.get(args.model) == "deblurgan":
        given = [flag for flag, value in (("--init-backbone", getattr(args, "init_backbone", None)),
                                          ("--freeze-backbone", getattr(args, "freeze_backbone", False))) if value]
        if given:
            raise InvalidArgumentError(
                f"{' and '.join(given)} set a SiamRPN trunk from a trained deblurrer; {args.model} is the deblurrer",
                fix="train the deblurrer without them, then pass its checkpoint as --init-backbone of "
                    "--model siamrpn-reuse")
    train_from_args(args)
    return 0
