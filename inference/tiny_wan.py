"""tiny-wan: a real, very small Wan 2.1 text-to-video pipeline that the project builds itself.

No weights can be downloaded here, so tests and the demo run the genuine diffusers
``WanPipeline`` code paths on a model made here (docs/architecture.md#models-without-downloads): a few-layer
``WanTransformer3DModel``, a small ``AutoencoderKLWan``, a small UMT5 encoder and a
Unigram tokenizer trained on a built-in advertising corpus. Its VAE and transformer then get
a short pretraining on procedurally drawn coloured clips (inference/tiny_wan_pretraining.py),
so that candidates differ visibly in colour, brightness and motion and a taste can be learned.
Every weight comes from a fixed seed on one deterministic CPU thread, so two builds with the
same seed and recipe are byte-identical; a build is cached under the settings' ``cache_dir``
by its build key (seed, recipe, code, library versions), so only the first one pays.

    python -m inference.tiny_wan --out models/tiny-wan [--seed 0] [--untrained]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import diffusers
import tokenizers
import torch
import transformers
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import T5Tokenizer, UMT5Config, UMT5EncoderModel

from adfame.settings import get_settings
from inference import tiny_wan_pretraining
from inference.model import filled_once
from inference.tiny_wan_pretraining import PretrainRecipe, pretrain_tiny_wan

# What Wan's text encoder reads: the pipeline pads every prompt to this many tokens.
MAX_SEQUENCE_LENGTH = 512
TOKENIZER_VOCAB_SIZE = 512
TEXT_DIM = 32
# The recipe the published model is built with (inference/tiny_wan_pretraining.py says why).
PRETRAINING = PretrainRecipe()
# Saved beside model_index.json: the build key, seed and recipe, so a published model says what it is.
BUILD_FILE = "tiny_wan_build.json"

# Prompts of the kind marketers write, plus every letter, digit and common symbol, so
# that the trained vocabulary covers any ordinary prompt without unknown characters.
CORPUS: tuple[str, ...] = (
    "a woman running in sneakers on a beach at sunrise, slow motion, golden hour",
    "a basketball player dunks in an empty stadium under bright floodlights",
    "close-up of a sports drink bottle covered in cold condensation droplets",
    "a football striker scores a goal, the crowd cheers, confetti falls",
    "a cyclist climbs a mountain road at dawn, drone shot, cinematic lighting",
    "a tennis player serves on a clay court, dust rises, dramatic slow motion",
    "a runner ties her shoelaces before a city marathon, shallow depth of field",
    "a skateboarder jumps over stairs in an urban plaza, handheld camera",
    "a surfer rides a huge wave at sunset, spray catches the light",
    "a yoga class on a rooftop at sunrise, calm and peaceful mood",
    "a sneaker rotates on a pedestal, studio lighting, product shot",
    "a smartphone shows a fitness app tracking heart rate and distance",
    "a family enjoys a picnic in the park with fresh fruit and lemonade",
    "a barista pours latte art into a ceramic cup, warm cozy cafe",
    "a sports car drives along a coastal highway, aerial tracking shot",
    "a luxury watch glints on a wrist, macro shot, black background",
    "a chef plates a colorful dish in a busy restaurant kitchen",
    "a boxer trains with a heavy bag in a gritty gym, sweat and chalk",
    "a swimmer dives into an olympic pool, underwater camera, bubbles",
    "a hiker reaches the summit and looks over misty valleys",
    "a soccer ball bounces on wet grass in the rain, low angle",
    "a gymnast performs on the balance beam, spotlight, silent arena",
    "an energy bar breaks in half revealing nuts and chocolate",
    "a team celebrates a championship victory with a golden trophy",
    "friends laugh at a music festival, colorful lights, fast cuts",
    "a new headphone model floats in the air, neon glow, futuristic style",
    "a mother and daughter bake cookies in a bright modern kitchen",
    "a mountain biker races down a forest trail, mud splashes the lens",
    "a marathon finish line with runners raising their arms in joy",
    "a baseball pitcher winds up and throws, stadium at night",
    "a skier carves through fresh powder snow, blue sky, wide shot",
    "a golf ball rolls toward the hole on a sunny green",
    "a fashion model walks down the runway in a sporty jacket",
    "a dog runs on the beach chasing a frisbee, playful mood",
    "a climber grips a rock wall, close-up of chalky hands",
    "an electric car charges in a clean modern garage",
    "a brand logo appears over a dynamic montage of athletes",
    "bold typography: Just Move. Run Faster. Play Harder. Be Yourself.",
    "Summer Sale 50% off, limited time offer, shop now online!",
    "New Collection 2025: lightweight, breathable, sustainable materials.",
    "camera: dolly in, pan left, tilt up, crane shot, tracking shot, static shot",
    "lighting: soft, hard, backlit, neon, natural daylight, moody, high key, low key",
    "pace: slow, calm, steady, energetic, fast, frantic, rhythmic",
    "style: cinematic, documentary, anime, retro film grain, minimalist, vibrant, black and white",
    "colors: red, orange, yellow, green, blue, purple, pink, white, black, gold, silver",
    "Nike Adidas Puma Reebok Under Armour New Balance Asics Gatorade Red Bull",
    "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "0 1 2 3 4 5 6 7 8 9 . , ; : ! ? ' \" - _ ( ) [ ] / & % $ # @ + = * < >",
)


def train_tokenizer(corpus: tuple[str, ...] = CORPUS, vocab_size: int = TOKENIZER_VOCAB_SIZE) -> T5Tokenizer:
    """A T5-style Unigram tokenizer trained on ``corpus`` (pad=0, eos=1, unk=2, like UMT5's)."""
    tokenizer = Tokenizer(models.Unigram())
    # The same pre-tokenisation T5Tokenizer applies, so the trained pieces match at inference.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer)
    trained = json.loads(tokenizer.to_str())["model"]["vocab"]
    # The trainer sums in parallel and orders equally rare pieces by hash order, so the
    # low digits of the scores and the order of ties vary between runs. Quantised scores
    # with ties sorted by piece make the vocabulary (and so every token id) reproducible.
    specials, pieces = trained[:3], trained[3:]
    quantised = sorted(((piece, round(score, 2)) for piece, score in pieces), key=lambda p: (-p[1], p[0]))
    vocab = [(piece, float(score)) for piece, score in specials] + quantised
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=MAX_SEQUENCE_LENGTH)


def _seeded(seed: int, component: int) -> None:
    """Seed each component separately, so that one component's size never shifts another's weights."""
    torch.manual_seed(seed * 1000 + component)


def untrained_tiny_wan_pipeline(seed: int = 0) -> WanPipeline:
    """tiny-wan with its initial random weights, float32 on the CPU (pretraining starts here)."""
    tokenizer = train_tokenizer()
    with torch.random.fork_rng(devices=[]):
        _seeded(seed, 0)
        text_encoder = UMT5EncoderModel(
            UMT5Config(
                vocab_size=len(tokenizer),
                d_model=TEXT_DIM,
                d_kv=8,
                d_ff=64,
                num_layers=2,
                num_heads=4,
                relative_attention_num_buckets=8,
                relative_attention_max_distance=32,
                dropout_rate=0.0,
                feed_forward_proj="gated-gelu",
            )
        )
        _seeded(seed, 1)
        # Same 8x spatial / 4x temporal compression and 16 latent channels as Wan 2.1's VAE, with
        # Wan 2.2's residual down- and up-sampling: at this width, without those shortcuts, colour
        # barely passes through the random network and a short pretraining cannot teach it.
        vae = AutoencoderKLWan(
            base_dim=8,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
            is_residual=True,
        )
        _seeded(seed, 2)
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=16,
            out_channels=16,
            text_dim=TEXT_DIM,
            freq_dim=256,
            ffn_dim=64,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
        )
    # Wan 2.1's own scheduler settings (flow matching solved with UniPC, shift 3).
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0, num_train_timesteps=1000
    )
    pipe = WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_key(seed: int = 0, recipe: PretrainRecipe | None = PRETRAINING) -> str:
    """A digest of everything that decides a build's bytes: the seed, the recipe, this code and
    the versions of the libraries that run it. It names the cached build and is published with it."""
    parts = [
        json.dumps({"seed": seed, "recipe": asdict(recipe) if recipe else None}, sort_keys=True),
        *(Path(module.__file__).read_text() for module in (sys.modules[__name__], tiny_wan_pretraining)),
        *(f"{lib.__name__} {lib.__version__}" for lib in (torch, diffusers, transformers, tokenizers)),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _save_build(out_dir: Path, seed: int, recipe: PretrainRecipe | None) -> None:
    """Build, pretrain unless ``recipe`` is None, and save the pipeline plus its BUILD_FILE."""
    pipe = untrained_tiny_wan_pipeline(seed)
    build: dict[str, object] = {"key": build_key(seed, recipe), "seed": seed, "recipe": None}
    if recipe is not None:
        report = pretrain_tiny_wan(pipe, recipe, seed)
        build["recipe"] = asdict(recipe)
        build["losses"] = {
            "vae": [report.vae_losses[0], report.vae_losses[-1]],
            "transformer": [report.transformer_losses[0], report.transformer_losses[-1]],
        }
    pipe.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / BUILD_FILE).write_text(json.dumps(build, indent=2, sort_keys=True) + "\n")


def cached_tiny_wan(
    seed: int = 0, recipe: PretrainRecipe | None = PRETRAINING, cache_root: Path | None = None
) -> Path:
    """The saved tiny-wan for ``seed`` and ``recipe``, built once per build key under ``cache_root``
    (default: the settings' ``cache_dir``), so that only the first build pays for the pretraining."""
    cache_root = cache_root or get_settings().cache_dir
    return filled_once(
        Path(cache_root) / f"tiny-wan-{build_key(seed, recipe)}",
        lambda folder: _save_build(folder, seed, recipe),
    )


def build_tiny_wan_pipeline(seed: int = 0, recipe: PretrainRecipe | None = PRETRAINING) -> WanPipeline:
    """The tiny-wan pipeline in memory, float32 on the CPU (the cached build, loaded)."""
    if recipe is None:
        return untrained_tiny_wan_pipeline(seed)
    pipe = WanPipeline.from_pretrained(cached_tiny_wan(seed, recipe))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_wan(
    out_dir: Path, seed: int = 0, recipe: PretrainRecipe | None = PRETRAINING, cache_root: Path | None = None
) -> Path:
    """Write tiny-wan for ``seed`` into ``out_dir``: pretrained by ``recipe``, untrained when it is None."""
    out_dir = Path(out_dir)
    shutil.copytree(cached_tiny_wan(seed, recipe, cache_root), out_dir, dirs_exist_ok=True)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the pipeline into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--untrained", action="store_true", help="skip the pretraining (random weights)")
    args = parser.parse_args(argv)
    recipe = None if args.untrained else PRETRAINING
    start = time.perf_counter()
    path = build_tiny_wan(args.out, seed=args.seed, recipe=recipe)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    kind = "untrained" if args.untrained else "pretrained"
    print(
        f"tiny-wan (seed {args.seed}, {kind}, build {build_key(args.seed, recipe)}) written to {path} "
        f"({size / 1024:.0f} KiB) in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
